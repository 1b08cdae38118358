// Where a shim deliberately differs from runc's, said out loud. A check whose
// expectation depends on one of these reads it from the profile, and records
// the observation as a documented difference so that --compare can tell it
// from an unexpected one.
import { Code } from "../../ttrpc/status";

export interface Profile {
  name: string;
  description: string;
  /**
   * "host": Create/Start/Pids report the container processes' own host pids (runc).
   * "agent": they report the sandbox's agent (or VM) pid, as Kata does; guest pids mean nothing on the host.
   */
  pids: "host" | "agent";
  /** The code for an illegal state move (start of a running task, delete of a running one). */
  illegalStateCode: number;
  /** "implemented": Checkpoint is attempted (it may fail for want of criu); "unimplemented": answers Unimplemented. */
  checkpoint: "implemented" | "unimplemented";
  /** "served": containerd 2.x's Sandbox API beside the Task API; "absent": every Sandbox RPC answers Unimplemented. */
  sandboxApi: "served" | "absent";
}

export const DIFFERENCES: Record<string, string> = {
  pids: "pids are the agent's (Kata: the VM's), not the container processes' host pids",
  "illegal-state-code": "illegal state moves answer FailedPrecondition (runc's shim sends plain errors, i.e. Unknown)",
  checkpoint: "Checkpoint answers Unimplemented, as Kata's shim does",
  "sandbox-api": "shimlab serves containerd 2.x's Sandbox API (containerd.runtime.sandbox.v1.Sandbox) for sandboxer = \"shim\"; runc's shim serves none and answers Unimplemented",
  "never-started-exit":
    "a task killed or deleted before Start gets no TaskExit (Kata's shim publishes exits only for started processes; runc's shim reaps its waiting init and publishes one); both satisfy events.delete-after-exit",
};

/**
 * Differences that show in recorded sequences rather than in one answer: the
 * two values are equivalent under the named difference when normalize makes them equal.
 */
export const EQUIVALENCES: { name: keyof typeof DIFFERENCES & string; applies: (key: string) => boolean; normalize: (value: string) => string }[] = [
  {
    name: "never-started-exit",
    applies: (key) => key.startsWith("events of task"),
    normalize: (v) => (v.split(" ").includes("/tasks/start") ? v : v.split(" ").filter((t) => t !== "/tasks/exit").join(" ")),
  },
];

export const PROFILES: Record<string, Profile> = {
  runc: {
    name: "runc",
    description: "containerd-shim-runc-v2: host pids, Unknown for illegal state moves, Checkpoint through criu, no Sandbox API",
    pids: "host",
    illegalStateCode: Code.Unknown,
    checkpoint: "implemented",
    sandboxApi: "absent",
  },
  shimlab: {
    name: "shimlab",
    description: "shimlab / Kata-shaped: agent pids, FailedPrecondition for illegal state moves, Checkpoint Unimplemented, the Sandbox API",
    pids: "agent",
    illegalStateCode: Code.FailedPrecondition,
    checkpoint: "unimplemented",
    sandboxApi: "served",
  },
};

/** The profile a shim binary most likely wants, from its name. */
export function guessProfile(binary: string): Profile {
  return /runc/.test(binary) ? PROFILES.runc : PROFILES.shimlab;
}
