// Pods: several tasks served by one shim, as Kata and runc's shim group them.
import type { RuleDef } from "../types";

export const podRules = [
  {
    id: "pods.grouping-annotations",
    section: "pods",
    level: "SHOULD",
    source: "runc-shim",
    kind: "prose",
    text: "A shim groups the containers of one pod by the OCI annotations CRI writes: `io.kubernetes.cri.sandbox-id` names the pod, `io.kubernetes.cri.container-type` says `sandbox` or `container` (CRI-O: `io.kubernetes.cri-o.SandboxID`, `…ContainerType`). runc's shim also honours `io.containerd.runc.v2.group`.",
    why: "containerd neither knows nor cares whether tasks share a shim: grouping is entirely the shim's decision in `start`.",
  },
  {
    id: "pods.start-reuses-shim",
    section: "pods",
    level: "MUST",
    source: "runc-shim",
    kind: "checked",
    text: "`start` for a container of a pod whose shim runs prints that shim's address (and writes it to the new bundle's `address`) and starts no new daemon.",
    why: "runc's shim finds the pod's socket busy (EADDRINUSE), connects to make sure it lives, and reuses it; a socket nobody answers is stale and replaced.",
  },
  {
    id: "pods.delete-one-member",
    section: "pods",
    level: "MUST",
    source: "containerd",
    kind: "checked",
    text: "`delete -id X` of one container of a shared shim cleans up X only; the shim and the pod's other tasks keep running.",
    why: "containerd runs `delete` after each task's deletion ([binary.delete-after-every-task](binary.md#binary.delete-after-every-task)): a `delete` that stops the shim kills the whole pod when one container is removed.",
  },
  {
    id: "pods.one-connection-per-task",
    section: "pods",
    level: "MUST",
    source: "containerd",
    kind: "prose",
    text: "containerd opens one connection per task, also when tasks share a shim, and sends each task's calls on its own; the connection of a task says nothing about the others.",
    why: "A shim that keeps per-connection state, or closes a connection when its first task goes, breaks the pod's other tasks ([shutdown.never-close-connection](binary.md#shutdown.never-close-connection)).",
  },
  {
    id: "pods.sandbox-last",
    section: "pods",
    level: "SHOULD",
    source: "shimlab",
    kind: "checked",
    text: "shimlab refuses to delete a pod's sandbox task while containers remain (`FailedPrecondition`), and kills the pod's containers (137) when the sandbox's init exits, as Kata stops the whole VM then.",
    why: "CRI always removes the containers first; a VM sandbox cannot outlive its pause container. runc's shim does neither, so no conformance check holds shims to it; the scenario `pod-two-containers` holds shimlab.",
  },
] as const satisfies readonly RuleDef[];
