// CreateSandbox's options as containerd 2.x's CRI sends them: the pod's whole
// runtime.v1.PodSandboxConfig in an Any (sb.WithOptions(config)), read into
// the pod layer's PodConfig. Note what is not there: containerd's
// `pod_annotations` filter applies only to pause containers' specs, so every
// pod annotation arrives; shimlab's own allow-lists (qemu enable_annotations)
// are what guards the hypervisor.
import type { Any } from "../gen/google.protobuf";
import { NamespaceMode, PodSandboxConfig } from "../gen/runtime.v1";
import { defaultPodConfig, type NamespaceMode as Mode, type PodConfig } from "../pod/pod-config";
import { invalidArgument } from "../errdefs";

/** The type URL containerd's typeurl gives CRI's (gogo-registered) message. */
export const POD_CONFIG_URLS = new Set([PodSandboxConfig.typeName, `type.googleapis.com/${PodSandboxConfig.typeName}`]);

function mode(m: number | undefined, what: string): Mode {
  switch (m ?? NamespaceMode.POD) {
    case NamespaceMode.POD:
      return "pod";
    case NamespaceMode.CONTAINER:
      return "container";
    case NamespaceMode.NODE:
      return "node";
    default:
      // TARGET names another container's namespace: a container option, never a pod's.
      throw invalidArgument(`pod ${what} namespace mode ${m} is not one a sandbox can have`);
  }
}

export function podConfigFrom(options: Any | undefined, sandboxId: string): PodConfig {
  if (!options || (!options.typeUrl && !options.value.length)) return defaultPodConfig(sandboxId);
  if (!POD_CONFIG_URLS.has(options.typeUrl)) {
    throw invalidArgument(`CreateSandbox options are ${JSON.stringify(options.typeUrl)}; shimlab reads CRI's ${PodSandboxConfig.typeName}`);
  }
  let c: PodSandboxConfig;
  try {
    c = PodSandboxConfig.decode(options.value);
  } catch (e) {
    throw invalidArgument(`CreateSandbox options do not decode as ${PodSandboxConfig.typeName}: ${(e as Error).message}`);
  }
  // CRI's zero value is POD for each: absent options mean the pod's own namespaces. Whether a
  // container joins the pod's pid namespace is its own spec's say; "node" alone changes the pod.
  const ns = c.linux?.securityContext?.namespaceOptions;
  const name = c.metadata ? `${c.metadata.namespace}/${c.metadata.name}` : sandboxId;
  return {
    name,
    hostname: c.hostname,
    dns: c.dnsConfig ? { servers: c.dnsConfig.servers, searches: c.dnsConfig.searches, options: c.dnsConfig.options } : null,
    network: mode(ns?.network, "network"),
    pid: mode(ns?.pid, "pid"),
    ipc: mode(ns?.ipc, "ipc"),
    sysctls: { ...(c.linux?.sysctls ?? {}) },
    cgroupParent: c.linux?.cgroupParent ?? "",
    annotations: { ...c.annotations },
    labels: { ...c.labels },
  };
}
