// One explicit state per process, and the only function that changes it.
// Like containerd's pkg/process: an illegal move is a typed error carrying
// runc's wording, never a boolean checked here and there.
import { ErrdefsError, type Kind } from "../errdefs";

export type ProcessStatus = "created" | "running" | "paused" | "stopped" | "deleted";
export type Operation = "start" | "pause" | "resume" | "kill" | "exit" | "delete";

const TABLE: Record<ProcessStatus, Partial<Record<Operation, ProcessStatus>>> = {
  created: { start: "running", kill: "created", exit: "stopped", delete: "deleted" },
  running: { pause: "paused", kill: "running", exit: "stopped" },
  paused: { resume: "running", kill: "paused", exit: "stopped" },
  stopped: { exit: "stopped", delete: "deleted" },
  deleted: {},
};

export class IllegalTransition extends ErrdefsError {
  constructor(
    readonly op: Operation,
    readonly from: ProcessStatus,
    kind: Kind,
    message: string,
  ) {
    super(kind, message);
    this.name = "IllegalTransition";
  }
}

/** runc's messages for the moves containerd users meet most. */
function refuse(op: Operation, from: ProcessStatus, id: string): IllegalTransition {
  if (from === "deleted") return new IllegalTransition(op, from, "NotFound", `process ${id} was deleted: not found`);
  if (op === "kill" && from === "stopped") return new IllegalTransition(op, from, "NotFound", "process already finished: not found");
  if (op === "delete") return new IllegalTransition(op, from, "FailedPrecondition", `cannot delete a ${from} process: failed precondition`);
  if (op === "start") return new IllegalTransition(op, from, "FailedPrecondition", `cannot start a ${from} process: failed precondition`);
  if (op === "pause") return new IllegalTransition(op, from, "FailedPrecondition", `cannot pause a ${from} process: failed precondition`);
  if (op === "resume") return new IllegalTransition(op, from, "FailedPrecondition", `cannot resume a ${from} process: failed precondition`);
  return new IllegalTransition(op, from, "FailedPrecondition", `cannot ${op} a ${from} process: failed precondition`);
}

export class StateMachine {
  private current: ProcessStatus = "created";
  private readonly listeners: ((from: ProcessStatus, to: ProcessStatus, op: Operation) => void)[] = [];

  constructor(readonly id: string) {}

  get status(): ProcessStatus {
    return this.current;
  }

  /** Throws the refusal for op without moving, or returns the state op would lead to. */
  check(op: Operation): ProcessStatus {
    const to = TABLE[this.current][op];
    if (!to) throw refuse(op, this.current, this.id);
    return to;
  }

  transition(op: Operation): ProcessStatus {
    const from = this.current;
    const to = this.check(op);
    this.current = to;
    if (from !== to) for (const l of this.listeners) l(from, to, op);
    return to;
  }

  onChange(l: (from: ProcessStatus, to: ProcessStatus, op: Operation) => void): void {
    this.listeners.push(l);
  }
}
