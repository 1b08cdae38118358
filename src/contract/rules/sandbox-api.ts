// containerd 2.x's Sandbox API (containerd.runtime.sandbox.v1.Sandbox): with
// sandboxer = "shim", the pod is the shim's sandbox, driven by these calls;
// the app containers stay tasks on the same shim.
import type { RuleDef } from "../types";

export const sandboxApiRules = [
  {
    id: "sandbox.lifecycle-order",
    section: "sandbox-lifecycle",
    level: "MUST",
    source: "containerd",
    kind: "checked",
    text: "In the order containerd's shim sandbox controller calls them: `CreateSandbox` (state NOTREADY, pid 0), `StartSandbox` (answers the pod's pid and `created_at`; state READY), `SandboxStatus`, `Platform`, `PingSandbox`, `StopSandbox`, `WaitSandbox` (exit status and `exited_at`), `SandboxStatus` NOTREADY with that exit time, `ShutdownSandbox`, after which the shim exits.",
    why: "CRI reports the pod from `SandboxStatus` and waits on `WaitSandbox` for its exit; after `ShutdownSandbox` nothing else stops the shim: a shim that stays is a leaked process per pod.",
  },
  {
    id: "sandbox.unknown-id",
    section: "sandbox-errors",
    level: "MUST",
    source: "containerd",
    kind: "checked",
    text: "Every Sandbox RPC for an id the shim does not serve answers `NotFound` and leaves the sandboxes it serves alone.",
    why: "The controller's stop and CRI's status read NotFound as \"already gone\": any other code turns a removed pod into an error the user sees.",
  },
  {
    id: "sandbox.create-twice",
    section: "sandbox-errors",
    level: "MUST",
    source: "containerd",
    kind: "checked",
    text: "A second `CreateSandbox` of an id the shim holds answers `AlreadyExists` and changes nothing.",
    why: "containerd retries a RunPodSandbox whose first attempt it could not confirm; the retry must not reset a pod that exists.",
  },
  {
    id: "sandbox.start-twice",
    section: "sandbox-errors",
    level: "SHOULD",
    source: "shimlab",
    kind: "checked",
    text: "`StartSandbox` of a started sandbox is an illegal state move (`FailedPrecondition`); the sandbox keeps running with the same pid.",
    why: "A second start that boots another agent or VM would orphan the first; shimlab holds sandboxes to one explicit state machine, as it does processes.",
  },
  {
    id: "sandbox.stop-stopped",
    section: "sandbox-errors",
    level: "MUST",
    source: "containerd",
    kind: "checked",
    text: "`StopSandbox` of a stopped sandbox answers OK (or `NotFound`, which the controller takes as stopped) and changes nothing: same state, same exit status and time.",
    why: "StopPodSandbox is idempotent in CRI: kubelet calls it again after a failure or a restart, and expects the pod's recorded exit to stand.",
  },
  {
    id: "sandbox.wait-after-exit",
    section: "sandbox-lifecycle",
    level: "MUST",
    source: "containerd",
    kind: "checked",
    text: "`WaitSandbox` blocks while the sandbox runs, answers its exit once it stops, and answers at once with the same exit status and `exited_at` when asked after the exit.",
    why: "containerd calls WaitSandbox right after StartSandbox and again after it restarts: a wait that never returns after the exit leaves the pod NotReady forever; one that returns early reports a live pod as dead.",
  },
  {
    id: "sandbox.metrics",
    section: "sandbox-lifecycle",
    level: "SHOULD",
    source: "runtime-v2",
    kind: "checked",
    text: "`SandboxMetrics` of a ready sandbox carries its id and the pod's cgroup statistics as an `Any` (`io.containerd.cgroups.v1.Metrics` or `v2`).",
    why: "This is where pod-level stats come from with the shim sandboxer (there is no pause task to ask); containerd 2.1's CRI does not call it yet, later versions and other clients do.",
  },
  {
    id: "sandbox.failed-create-shutdown",
    section: "sandbox-lifecycle",
    level: "MUST",
    source: "containerd",
    kind: "checked",
    text: "After a failed `CreateSandbox` the controller calls `ShutdownSandbox` for that id, and the shim must answer it and exit.",
    why: "containerd's cleanup after a failed create is that one call (then the binary's `delete`); a shim that answers NotFound and stays is a process nobody will stop.",
  },
] as const satisfies readonly RuleDef[];
