// The process state machine (src/pod/state.ts) by its public API: every legal
// move, and every illegal one refused with the code containerd acts on, read
// off the wire (wireStatus), and runc's wording where containerd's users meet
// it. The table below is written from containerd's pkg/process states, not
// copied from the source, so that a wrong entry there shows here.
import { describe, it, expect } from "vitest";
import { ContainerStateMachine, StateMachine, type Operation, type ProcessStatus } from "../../src/pod/state";
import { SandboxStateMachine, type SandboxLife, type SandboxOp } from "../../src/pod/sandbox-state";
import { wireStatus } from "../../src/testing/wire-status";

// Pausing is the container's (its cgroup is frozen): the container machine has it (test/unit/state.test.ts).
const STATUSES: ProcessStatus[] = ["created", "running", "stopped", "deleted"];
const OPS: Operation[] = ["start", "kill", "exit", "delete"];

const LEGAL: Record<ProcessStatus, Partial<Record<Operation, ProcessStatus>>> = {
  // A created init can be killed (runc's waiting init stays created until Start or its exit) and deleted.
  created: { start: "running", kill: "created", exit: "stopped", delete: "deleted" },
  running: { kill: "running", exit: "stopped" },
  // A second exit (the agent's and the shim's own view) changes nothing.
  stopped: { exit: "stopped", delete: "deleted" },
  deleted: {},
};

/** How to reach each status from a new machine, through legal moves only. */
const PATH: Record<ProcessStatus, Operation[]> = {
  created: [],
  running: ["start"],
  stopped: ["start", "exit"],
  deleted: ["exit", "delete"],
};

function machineAt(status: ProcessStatus, id = "p1"): { m: StateMachine; moves: string[] } {
  const m = new StateMachine(id);
  for (const op of PATH[status]) m.transition(op);
  expect(m.status).toBe(status);
  const moves: string[] = [];
  m.onChange((from, to, op) => moves.push(`${from} -${op}-> ${to}`));
  return { m, moves };
}

/** The code containerd reads for a refusal, as runc's shim sends it (containerd's errdefs over the wire). */
function expectedRefusal(from: ProcessStatus, op: Operation): string {
  if (from === "deleted") return "NotFound";
  if (op === "kill" && from === "stopped") return "NotFound"; // kill.exited-init: "process already finished"
  return "FailedPrecondition"; // errors.illegal-move
}

describe("process state machine (src/pod/state.ts)", () => {
  it("starts created", () => {
    expect(new StateMachine("p").status).toBe("created");
  });

  const legal = STATUSES.flatMap((from) => Object.entries(LEGAL[from]).map(([op, to]) => [from, op as Operation, to as ProcessStatus] as const));
  it.each(legal)("%s -%s-> %s", (from, op, to) => {
    const { m, moves } = machineAt(from);
    expect(m.check(op)).toBe(to);
    expect(m.status).toBe(from); // check() never moves
    expect(m.transition(op)).toBe(to);
    expect(m.status).toBe(to);
    // Listeners hear of real changes only: a kill that leaves a process running is no news.
    expect(moves).toEqual(from === to ? [] : [`${from} -${op}-> ${to}`]);
  });

  const illegal = STATUSES.flatMap((from) => OPS.filter((op) => !(op in LEGAL[from])).map((op) => [from, op] as const));
  it.each(illegal)("refuses %s -%s-> with the code containerd expects, and stays (errors.illegal-move)", async (from, op) => {
    const { m, moves } = machineAt(from);
    expect(await wireStatus(() => m.check(op))).toBe(expectedRefusal(from, op));
    expect(await wireStatus(() => m.transition(op))).toBe(expectedRefusal(from, op));
    expect(m.status).toBe(from);
    expect(moves).toEqual([]);
  });

  it("covers every pair of state and operation, legal or refused", () => {
    expect(legal.length + illegal.length).toBe(STATUSES.length * OPS.length);
  });

  it("refuses with runc's words where containerd's users read them (start.not-twice, delete.not-running, kill.exited-init)", () => {
    const msg = (status: ProcessStatus, op: Operation) => {
      try {
        machineAt(status, "web").m.transition(op);
      } catch (e) {
        return (e as Error).message;
      }
      return "moved";
    };
    expect(msg("running", "start")).toMatch(/^cannot start a running process/);
    expect(msg("running", "delete")).toMatch(/^cannot delete a running process/);
    // A paused container's init is still running; the container refuses, in runc's words.
    const c = new ContainerStateMachine("web");
    c.transition("start");
    c.transition("pause");
    expect(() => c.check("delete")).toThrow(/^cannot delete a paused process/);
    expect(msg("stopped", "kill")).toBe("process already finished: not found");
    expect(msg("deleted", "start")).toMatch(/web/); // which process, where there is no state left to name
  });
});

// The sandbox's own life (containerd's Sandbox API, the shim sandboxer), by the same habit.
const LIVES: SandboxLife[] = ["created", "starting", "ready", "stopping", "stopped", "shutdown"];
const SANDBOX_OPS: SandboxOp[] = ["start", "started", "stop", "stopped", "exit", "shutdown"];
const SANDBOX_LEGAL: Record<SandboxLife, Partial<Record<SandboxOp, SandboxLife>>> = {
  created: { start: "starting", stop: "stopped", shutdown: "shutdown" },
  starting: { started: "ready", stopped: "stopped", exit: "stopped" },
  ready: { stop: "stopping", exit: "stopped" },
  stopping: { stopped: "stopped", exit: "stopping" },
  stopped: { exit: "stopped", shutdown: "shutdown" },
  shutdown: {},
};
const SANDBOX_PATH: Record<SandboxLife, SandboxOp[]> = {
  created: [],
  starting: ["start"],
  ready: ["start", "started"],
  stopping: ["start", "started", "stop"],
  stopped: ["stop"],
  shutdown: ["shutdown"],
};

describe("sandbox state machine (src/pod/sandbox-state.ts)", () => {
  const at = (life: SandboxLife) => {
    const m = new SandboxStateMachine("pod");
    for (const op of SANDBOX_PATH[life]) m.transition(op);
    expect(m.state).toBe(life);
    return m;
  };

  const legal = LIVES.flatMap((from) => Object.entries(SANDBOX_LEGAL[from]).map(([op, to]) => [from, op as SandboxOp, to as SandboxLife] as const));
  it.each(legal)("%s -%s-> %s", (from, op, to) => {
    const m = at(from);
    expect(m.transition(op)).toBe(to);
    expect(m.state).toBe(to);
  });

  const illegal = LIVES.flatMap((from) => SANDBOX_OPS.filter((op) => !(op in SANDBOX_LEGAL[from])).map((op) => [from, op] as const));
  it.each(illegal)("refuses %s -%s->, and stays", async (from, op) => {
    const m = at(from);
    // containerd's shim controller reads NotFound from StopSandbox as "already stopped".
    const want = from === "shutdown" || (op === "stop" && from === "stopped") ? "NotFound" : "FailedPrecondition";
    expect(await wireStatus(() => m.transition(op))).toBe(want);
    expect(m.state).toBe(from);
  });
});
