// Which containerd: Debian 12's 1.6, or 1.7 and 2.1 fetched into shimlab's cache.
export { resolveContainerd, fetchContainerd, CONTAINERD_SERIES, type ContainerdPeer, type ContainerdSeries } from "../harness/peers/containerd";
