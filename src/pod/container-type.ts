// Whether a task opens a pod or joins one, read from the bundle's annotations
// in Kata's order of keys (containerd CRI, CRI-O, dockershim).
import { invalidArgument } from "../errdefs";

export type ContainerType = "pod_sandbox" | "pod_container" | "single_container";

export const TYPE_KEYS = ["io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType", "io.kubernetes.docker.type"] as const;
export const SANDBOX_ID_KEYS = ["io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID", "io.kubernetes.sandbox.id"] as const;

export interface PodPlacement {
  type: ContainerType;
  /** The pod this task belongs to: its own id for a sandbox or a single container. */
  sandboxId: string;
  /** The annotation key that decided, for messages and traces. */
  decidedBy?: string;
}

/**
 * Kata's oci.ContainerType and oci.SandboxID: the first type key present
 * decides; "sandbox"/"podsandbox" open a pod, "container" joins one, any
 * other value is an error; no key at all means a one-container sandbox.
 */
export function placement(taskId: string, annotations: Record<string, string> | undefined): PodPlacement {
  const a = annotations ?? {};
  for (const key of TYPE_KEYS) {
    if (!(key in a)) continue;
    const v = a[key];
    if (v === "sandbox" || v === "podsandbox") return { type: "pod_sandbox", sandboxId: taskId, decidedBy: key };
    if (v === "container") {
      const idKey = SANDBOX_ID_KEYS.find((k) => a[k]);
      if (!idKey) {
        throw invalidArgument(`container ${taskId} has ${key}=container but no sandbox id (looked for ${SANDBOX_ID_KEYS.join(", ")})`);
      }
      return { type: "pod_container", sandboxId: a[idKey], decidedBy: key };
    }
    throw invalidArgument(`unknown container type ${JSON.stringify(v)} in annotation ${key} (want sandbox, podsandbox or container)`);
  }
  return { type: "single_container", sandboxId: taskId };
}

/** Kata's oci.IsCRIOContainerManager: CRI-O marks every container with its own type key. */
export function managedByCrio(annotations: Record<string, string> | undefined): boolean {
  return !!annotations && TYPE_KEYS[1] in annotations;
}
