// The process and container state tables: every legal move, and illegal ones
// as typed errdefs errors with the wire wording they always had.
import { describe, it, expect } from "vitest";
import {
  ContainerStateMachine,
  IllegalContainerMove,
  IllegalTransition,
  StateMachine,
  type ContainerOperation,
  type ContainerStatus,
} from "../../src/pod/state";
import { kindOf } from "../../src/errdefs";
import { toGrpc } from "../../src/ttrpc/errgrpc";
import { Code } from "../../src/ttrpc/status";
import { Container, type ContainerHost } from "../../src/pod/container";
import { NULL_IO } from "../../src/pod/process";
import { nullLogger } from "../../src/util/logger";

/** Drives a fresh container machine to `status` by legal moves. */
function containerIn(status: ContainerStatus): ContainerStateMachine {
  const m = new ContainerStateMachine("c1");
  const path: Record<ContainerStatus, ContainerOperation[]> = {
    created: [],
    running: ["start"],
    paused: ["start", "pause"],
    stopped: ["start", "exit"],
    deleted: ["start", "exit", "delete"],
  };
  for (const op of path[status]) m.transition(op);
  expect(m.status).toBe(status);
  return m;
}

const ALL_OPS: ContainerOperation[] = ["start", "pause", "resume", "exec", "update", "kill", "exit", "delete"];

/** Every legal move of a container, written out here rather than read from the module. */
const LEGAL: [ContainerStatus, ContainerOperation, ContainerStatus][] = [
  ["created", "start", "running"],
  ["created", "update", "created"],
  ["created", "exit", "stopped"],
  ["created", "delete", "deleted"],
  ["running", "pause", "paused"],
  ["running", "exec", "running"],
  ["running", "update", "running"],
  ["running", "kill", "running"],
  ["running", "exit", "stopped"],
  ["paused", "resume", "running"],
  ["paused", "exec", "paused"],
  ["paused", "update", "paused"],
  ["paused", "kill", "paused"],
  ["paused", "exit", "stopped"],
  ["stopped", "exit", "stopped"],
  ["stopped", "delete", "deleted"],
];

describe("the container state machine", () => {
  it("makes every legal move, and tells its listeners of each change", () => {
    for (const [from, op, to] of LEGAL) {
      const m = containerIn(from);
      const seen: string[] = [];
      m.onChange((f, t, o) => seen.push(`${f}-${o}->${t}`));
      expect(m.can(op), `${from} ${op}`).toBe(true);
      expect(m.transition(op), `${from} ${op}`).toBe(to);
      expect(m.status).toBe(to);
      expect(seen).toEqual(from === to ? [] : [`${from}-${op}->${to}`]);
    }
  });

  it("refuses every other move with a typed error, and does not move", () => {
    const legal = new Set(LEGAL.map(([f, o]) => `${f} ${o}`));
    for (const from of ["created", "running", "paused", "stopped", "deleted"] as ContainerStatus[]) {
      for (const op of ALL_OPS) {
        if (legal.has(`${from} ${op}`)) continue;
        const m = containerIn(from);
        expect(m.can(op), `${from} ${op}`).toBe(false);
        let err: unknown;
        try {
          m.transition(op);
        } catch (e) {
          err = e;
        }
        expect(err, `${from} ${op}`).toBeInstanceOf(IllegalContainerMove);
        expect([(err as IllegalContainerMove).op, (err as IllegalContainerMove).from]).toEqual([op, from]);
        expect(kindOf(err)).toBe(from === "deleted" ? "NotFound" : "FailedPrecondition");
        expect(m.status).toBe(from);
      }
    }
  });

  it("answers a refused pause, resume, exec or update with the code and words the wire always carried", () => {
    const wire = (m: ContainerStateMachine, op: ContainerOperation) => {
      try {
        m.check(op);
      } catch (e) {
        const s = toGrpc(e);
        return [s.code, s.message];
      }
      return null;
    };
    expect(wire(containerIn("created"), "pause")).toEqual([Code.FailedPrecondition, "cannot pause a created process: failed precondition"]);
    expect(wire(containerIn("paused"), "pause")).toEqual([Code.FailedPrecondition, "cannot pause a paused process: failed precondition"]);
    expect(wire(containerIn("running"), "resume")).toEqual([Code.FailedPrecondition, "cannot resume a running process: failed precondition"]);
    expect(wire(containerIn("stopped"), "resume")).toEqual([Code.FailedPrecondition, "cannot resume a stopped process: failed precondition"]);
    expect(wire(containerIn("created"), "exec")).toEqual([Code.FailedPrecondition, "container c1 is created: cannot exec: failed precondition"]);
    expect(wire(containerIn("stopped"), "update")).toEqual([Code.FailedPrecondition, "container c1 is stopped: cannot update: failed precondition"]);
    expect(wire(containerIn("deleted"), "pause")?.[0]).toBe(Code.NotFound);
  });
});

describe("the process state machine", () => {
  it("has no paused state: a process of a paused container runs, and is killed and exits as such", () => {
    const p = new StateMachine("c1");
    p.transition("start");
    expect(p.transition("kill")).toBe("running");
    expect(p.transition("exit")).toBe("stopped");
    expect(() => p.check("kill")).toThrow("process already finished: not found");
    expect(p.transition("delete")).toBe("deleted");
    const err = (() => {
      try {
        p.check("start");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(IllegalTransition);
    expect([kindOf(err), (err as Error).message]).toEqual(["NotFound", "process c1 was deleted: not found"]);
  });

  it("refuses to delete a running process, as Delete of a running exec answers", () => {
    const p = new StateMachine("e1");
    p.transition("start");
    expect(() => p.transition("delete")).toThrow("cannot delete a running process: failed precondition");
    expect(kindOf((() => { try { p.check("delete"); } catch (e) { return e; } })())).toBe("FailedPrecondition");
  });
});

describe("a container's state beside its init's", () => {
  async function started() {
    let exit!: (status: number) => void;
    const exited = new Promise<{ status: number }>((r) => (exit = (status) => r({ status })));
    const calls: string[] = [];
    const agent = new Proxy({} as Record<string, unknown>, {
      get: (_t, name: string) => async () => {
        calls.push(name);
        if (name === "ReadStdout" || name === "ReadStderr") return { data: Buffer.alloc(0) };
        if (name === "WaitProcess") return exited;
        return {};
      },
    });
    const host = {
      agent,
      pid: 42,
      guest: false,
      sandboxId: "c1",
      logger: nullLogger,
      shareRootfs: async () => "/rootfs",
      unshareRootfs: async () => {},
      processExited: () => {},
    } as unknown as ContainerHost;
    const spec = { ociVersion: "1.0.2", process: { args: ["sh"], cwd: "/", user: { uid: 0, gid: 0 } }, root: { path: "/r" } };
    const c = await Container.create(
      { id: "c1", bundle: "/b", spec: spec as never, type: "pod_sandbox", rootfs: [], stdio: { stdin: "", stdout: "", stderr: "", terminal: false }, io: NULL_IO },
      host,
    );
    expect(c.state.status).toBe("created");
    await c.start();
    return { c, exit, calls };
  }
  const refusal = (p: Promise<unknown>) => p.then(() => null, (e) => [kindOf(e), (e as Error).message]);

  it("pauses and resumes the container, not its processes; an exec waits for the resume to start", async () => {
    const { c, calls } = await started();
    expect([c.state.status, c.init.status]).toEqual(["running", "running"]);
    await c.pause();
    expect([c.state.status, c.init.status]).toEqual(["paused", "running"]);
    expect(calls).toContain("PauseContainer");
    expect(await refusal(c.pause())).toEqual(["FailedPrecondition", "cannot pause a paused process: failed precondition"]);
    const e1 = c.addExec("e1", { args: ["true"], cwd: "/" } as never, { stdin: "", stdout: "", stderr: "", terminal: false }, NULL_IO);
    expect(await refusal(c.startExec(e1))).toEqual(["FailedPrecondition", "container c1 is paused: cannot start exec e1: failed precondition"]);
    await c.resume();
    expect([c.state.status, c.init.status]).toEqual(["running", "running"]);
    expect(await refusal(c.resume())).toEqual(["FailedPrecondition", "cannot resume a running process: failed precondition"]);
  });

  it("follows its init's exit, paused or not, and then refuses exec and resume", async () => {
    const { c, exit } = await started();
    await c.pause();
    exit(137);
    await c.init.wait();
    expect([c.state.status, c.init.status]).toEqual(["stopped", "stopped"]);
    expect(await refusal(c.resume())).toEqual(["FailedPrecondition", "cannot resume a stopped process: failed precondition"]);
    expect(() => c.addExec("e2", { args: ["true"] } as never, { stdin: "", stdout: "", stderr: "", terminal: false }, NULL_IO)).toThrow(
      "container c1 is stopped: cannot exec: failed precondition",
    );
    await c.delete();
    expect([c.state.status, c.init.status]).toEqual(["deleted", "deleted"]);
  });
});
