// Exit statuses and times: the numbers every answer and event must agree on.
import type { RuleDef } from "../types";

export const exitRules = [
  {
    id: "exit.normal-status",
    section: "exit",
    level: "MUST",
    source: "runc-shim",
    kind: "checked",
    text: "A process that exits by itself has its exit code (`WEXITSTATUS`) as `exit_status`, in Wait, State (then STOPPED), Delete and TaskExit.",
  },
  {
    id: "exit.signal-128-plus",
    section: "exit",
    level: "MUST",
    source: "runc-shim",
    kind: "checked",
    text: "A process killed by a signal has `exit_status` 128 + the signal number: SIGKILL 137, SIGTERM 143.",
    why: "The kubelet and `ctr` report these numbers and restart policies read them; a shim that reports 0 or -1 hides every OOM kill and every stop.",
  },
  {
    id: "exit.exited-at",
    section: "exit",
    level: "MUST",
    source: "runc-shim",
    kind: "checked",
    text: "Once a process exited, `exited_at` is the time it exited, the same in every answer and event.",
  },
  {
    id: "exit.not-exited-time",
    section: "exit",
    level: "MUST",
    source: "containerd",
    kind: "checked",
    text: "A process that has not exited has `exited_at` set to Go's zero time (`seconds = -62135596800`, `nanos = 0`), never left out.",
    why: "containerd 1.6 reads a missing Timestamp as the zero time, but 2.x reads it as 1970-01-01, which clients show as an exit in 1970: send the field on every version.",
  },
  {
    id: "exit.consistent",
    section: "exit",
    level: "MUST",
    source: "containerd",
    kind: "checked",
    text: "Wait, State, Delete, TaskExit and TaskDelete agree on each process's exit status.",
    why: "Different clients read different ones (CRI Wait, `ctr` the events, `ctr task delete` Delete): a disagreement is a wrong exit code somewhere.",
  },
  {
    id: "exit.crash-255",
    section: "exit",
    level: "SHOULD",
    source: "containerd",
    kind: "prose",
    text: "When the shim died and its `delete` failed too, containerd publishes the task's exit itself with status 255 and the current time.",
    why: "255 in a container's status usually means: the shim is gone, and so is the real exit code. [binary.delete-after-crash](binary.md#binary.delete-after-crash) is how a shim avoids it.",
  },
] as const satisfies readonly RuleDef[];
