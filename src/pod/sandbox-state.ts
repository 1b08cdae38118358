// The life of a sandbox that containerd's Sandbox API drives (the shim
// sandboxer): one explicit state and the only function that changes it, as
// state.ts is for processes. An illegal move is a typed error with the errdefs
// class containerd acts on: its shim controller takes NotFound from
// StopSandbox as "already stopped", so stopping a stopped sandbox says so,
// as runc's shim says "process already finished: not found" to a late kill.
import { ErrdefsError, type Kind } from "../errdefs";

export type SandboxLife = "created" | "starting" | "ready" | "stopping" | "stopped" | "shutdown";
export type SandboxOp = "start" | "started" | "stop" | "stopped" | "exit" | "shutdown";

const TABLE: Record<SandboxLife, Partial<Record<SandboxOp, SandboxLife>>> = {
  created: { start: "starting", stop: "stopped", shutdown: "shutdown" },
  starting: { started: "ready", stopped: "stopped", exit: "stopped" },
  ready: { stop: "stopping", exit: "stopped" },
  stopping: { stopped: "stopped", exit: "stopping" },
  stopped: { exit: "stopped", shutdown: "shutdown" },
  shutdown: {},
};

export class IllegalSandboxMove extends ErrdefsError {
  constructor(
    readonly op: SandboxOp,
    readonly from: SandboxLife,
    kind: Kind,
    message: string,
  ) {
    super(kind, message);
    this.name = "IllegalSandboxMove";
  }
}

function refuse(op: SandboxOp, from: SandboxLife, id: string): IllegalSandboxMove {
  if (from === "shutdown") return new IllegalSandboxMove(op, from, "NotFound", `sandbox ${id} was shut down: not found`);
  if (op === "stop" && from === "stopped") return new IllegalSandboxMove(op, from, "NotFound", `sandbox ${id} is already stopped: not found`);
  if (op === "shutdown") return new IllegalSandboxMove(op, from, "FailedPrecondition", `cannot shut down sandbox ${id} while it is ${from}: failed precondition`);
  return new IllegalSandboxMove(op, from, "FailedPrecondition", `cannot ${op} sandbox ${id} while it is ${from}: failed precondition`);
}

export class SandboxStateMachine {
  private current: SandboxLife = "created";
  private readonly listeners: ((from: SandboxLife, to: SandboxLife) => void)[] = [];

  constructor(readonly id: string) {}

  get state(): SandboxLife {
    return this.current;
  }

  check(op: SandboxOp): SandboxLife {
    const to = TABLE[this.current][op];
    if (!to) throw refuse(op, this.current, this.id);
    return to;
  }

  transition(op: SandboxOp): SandboxLife {
    const from = this.current;
    const to = this.check(op);
    this.current = to;
    if (from !== to) for (const l of this.listeners) l(from, to);
    return to;
  }

  onChange(l: (from: SandboxLife, to: SandboxLife) => void): void {
    this.listeners.push(l);
  }
}
