// A private real containerd for a describe block (SHIMLAB_CONTAINERD's
// version): the same fixture users get from shimlab/vitest.
export { useContainerd, type ContainerdFixture } from "../../src/vitest";
