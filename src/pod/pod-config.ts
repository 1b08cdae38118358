// What a pod asks of its sandbox when no pause container carries it: with
// containerd 2.x's shim sandboxer the pod's settings reach the shim once, in
// CreateSandbox (CRI's PodSandboxConfig, decoded by the shim layer), instead
// of as a pause container's OCI spec.

/** A namespace the pod shares among its containers, shares with the node, or leaves to each container. */
export type NamespaceMode = "pod" | "container" | "node";

export interface PodConfig {
  /** The pod's name as Kubernetes knows it, for messages. */
  name: string;
  hostname: string;
  dns: { servers: string[]; searches: string[]; options: string[] } | null;
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
  sysctls: Record<string, string>;
  cgroupParent: string;
  annotations: Record<string, string>;
  labels: Record<string, string>;
}

/** A pod that said nothing (a CreateSandbox without options): namespaces of its own, as CRI's zero values mean. */
export function defaultPodConfig(name: string): PodConfig {
  return { name, hostname: "", dns: null, network: "pod", pid: "pod", ipc: "pod", sysctls: {}, cgroupParent: "", annotations: {}, labels: {} };
}
