// containerd's CRI from a test: a private containerd with the CRI plugin, and a client.
export { CriClient, criTarget, type CriClientOptions } from "../harness/cri/client";
export { startCriContainerd, waitForImages, type CriContainerd, type CriContainerdOptions } from "../harness/cri/containerd";
export { podConfig, hostNetworkPod, containerConfig, type PodOptions, type ContainerOptions } from "../harness/cri/pod";
