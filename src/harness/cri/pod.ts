// Pod and container configs as the kubelet would send them, kept small: a pod
// on the host's network (no CNI) or its own (CNI's, cni.ts), and a container
// running a command from an image.
import type { ContainerConfigInit, PodSandboxConfigInit } from "../../gen/runtime.v1";
import { NamespaceMode } from "../../gen/runtime.v1";

export interface PodOptions {
  name: string;
  namespace?: string;
  uid?: string;
  /** cgroup parent for the pod (runc puts its containers there; shimlab's agent uses its own). */
  cgroupParent?: string;
  logDirectory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** The host's network (hostNetwork: true), or a namespace of the pod's own that CNI sets up. */
  network?: "node" | "pod";
}

export function hostNetworkPod(o: PodOptions): PodSandboxConfigInit {
  return podConfig({ ...o, network: "node" });
}

export function podConfig(o: PodOptions): PodSandboxConfigInit {
  return {
    metadata: { name: o.name, namespace: o.namespace ?? "default", uid: o.uid ?? `uid-${o.name}`, attempt: 0 },
    logDirectory: o.logDirectory ?? "",
    labels: o.labels ?? {},
    annotations: o.annotations ?? {},
    linux: {
      cgroupParent: o.cgroupParent ?? "",
      securityContext: { namespaceOptions: { network: o.network === "pod" ? NamespaceMode.POD : NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } },
    },
  };
}

export interface ContainerOptions {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Record<string, string>;
  /** Relative to the pod's log directory. */
  logPath?: string;
  labels?: Record<string, string>;
  /** The pod's network, as its config says (default: the host's). */
  network?: "node" | "pod";
  /** Own pid namespace (kubelet's default), or the pod's (shareProcessNamespace). */
  pid?: "container" | "pod";
  /** Keep stdin open for Attach (kubectl run -i); stdinOnce closes it after the first attach ends. */
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
}

export function containerConfig(o: ContainerOptions): ContainerConfigInit {
  return {
    metadata: { name: o.name, attempt: 0 },
    // As the kubelet sends it: CRI-O refuses a container whose image the user did not name.
    image: { image: o.image, userSpecifiedImage: o.image },
    command: o.command ?? [],
    args: o.args ?? [],
    envs: Object.entries(o.env ?? {}).map(([key, value]) => ({ key, value })),
    logPath: o.logPath ?? "",
    labels: o.labels ?? {},
    stdin: !!o.stdin,
    stdinOnce: !!o.stdinOnce,
    tty: !!o.tty,
    // Unset, the proto3 default POD (0) would put every container in the pause container's pid namespace.
    linux: { securityContext: { namespaceOptions: { network: o.network === "pod" ? NamespaceMode.POD : NamespaceMode.NODE, pid: o.pid === "pod" ? NamespaceMode.POD : NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } } },
  };
}
