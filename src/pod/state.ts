// One explicit state per process and per container, and the only functions
// that change them. Like containerd's pkg/process: an illegal move is a typed
// error carrying runc's wording, never a boolean checked here and there. A
// move that changes nothing (kill of a running process, exec into a running
// container) is a query: the table says whether it may happen now.
import { ErrdefsError, type Kind } from "../errdefs";

type Table<S extends string, O extends string> = Record<S, Partial<Record<O, S>>>;

class Machine<S extends string, O extends string> {
  private current: S;
  private readonly listeners: ((from: S, to: S, op: O) => void)[] = [];

  constructor(
    readonly id: string,
    private readonly table: Table<S, O>,
    initial: S,
    private readonly refuse: (op: O, from: S, id: string) => Error,
  ) {
    this.current = initial;
  }

  get status(): S {
    return this.current;
  }

  /** Whether op may happen now. */
  can(op: O): boolean {
    return this.table[this.current][op] !== undefined;
  }

  /** Throws the refusal for op without moving, or returns the state op would lead to. */
  check(op: O): S {
    const to = this.table[this.current][op];
    if (!to) throw this.refuse(op, this.current, this.id);
    return to;
  }

  transition(op: O): S {
    const from = this.current;
    const to = this.check(op);
    this.current = to;
    if (from !== to) for (const l of this.listeners) l(from, to, op);
    return to;
  }

  onChange(l: (from: S, to: S, op: O) => void): void {
    this.listeners.push(l);
  }
}

// Processes. Pausing is the container's (its cgroup is frozen, not a process): a process of a
// paused container is still running, and its container says it is paused.

export type ProcessStatus = "created" | "running" | "stopped" | "deleted";
export type Operation = "start" | "kill" | "exit" | "delete";

const PROCESS: Table<ProcessStatus, Operation> = {
  created: { start: "running", kill: "created", exit: "stopped", delete: "deleted" },
  running: { kill: "running", exit: "stopped" },
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
function refuseProcess(op: Operation, from: ProcessStatus, id: string): IllegalTransition {
  if (from === "deleted") return new IllegalTransition(op, from, "NotFound", `process ${id} was deleted: not found`);
  if (op === "kill" && from === "stopped") return new IllegalTransition(op, from, "NotFound", "process already finished: not found");
  return new IllegalTransition(op, from, "FailedPrecondition", `cannot ${op} a ${from} process: failed precondition`);
}

export class StateMachine extends Machine<ProcessStatus, Operation> {
  constructor(id: string) {
    super(id, PROCESS, "created", refuseProcess);
  }
}

// Containers. start, exit and delete are their init's (Container moves this machine when its
// init moves); pause and resume are the container's own. kill is what a whole container takes
// (kill --all, a pod going down): what runs in it, frozen or not, while a created container has
// only the runtime's waiting init, which the process table's kill covers.

export type ContainerStatus = "created" | "running" | "paused" | "stopped" | "deleted";
export type ContainerOperation = "start" | "pause" | "resume" | "exec" | "update" | "kill" | "exit" | "delete";

const CONTAINER: Table<ContainerStatus, ContainerOperation> = {
  created: { start: "running", update: "created", exit: "stopped", delete: "deleted" },
  running: { pause: "paused", exec: "running", update: "running", kill: "running", exit: "stopped" },
  paused: { resume: "running", exec: "paused", update: "paused", kill: "paused", exit: "stopped" },
  stopped: { exit: "stopped", delete: "deleted" },
  deleted: {},
};

export class IllegalContainerMove extends ErrdefsError {
  constructor(
    readonly op: ContainerOperation,
    readonly from: ContainerStatus,
    kind: Kind,
    message: string,
  ) {
    super(kind, message);
    this.name = "IllegalContainerMove";
  }
}

/** Pause, resume and delete keep the wording they had when they were moves of the init process: runc's ("cannot delete a paused process"). */
function refuseContainer(op: ContainerOperation, from: ContainerStatus, id: string): IllegalContainerMove {
  if (from === "deleted") return new IllegalContainerMove(op, from, "NotFound", `container ${id} was deleted: not found`);
  if (op === "pause" || op === "resume" || op === "delete") return new IllegalContainerMove(op, from, "FailedPrecondition", `cannot ${op} a ${from} process: failed precondition`);
  if (op === "exec" || op === "update") return new IllegalContainerMove(op, from, "FailedPrecondition", `container ${id} is ${from}: cannot ${op}: failed precondition`);
  return new IllegalContainerMove(op, from, "FailedPrecondition", `cannot ${op} container ${id} while it is ${from}: failed precondition`);
}

export class ContainerStateMachine extends Machine<ContainerStatus, ContainerOperation> {
  constructor(id: string) {
    super(id, CONTAINER, "created", refuseContainer);
  }
}
