// containerd's teardown of tasks against fake shims: the calls in order, a
// pod's shared shim kept until its last task, `delete` always or only after a
// failure, a straggler killed and reported, and the Sandbox API's end.
import { describe, it, expect } from "vitest";
import { spawn } from "node:child_process";
import { teardownSandbox, teardownTasks, alive, type HeldTask } from "../../src/harness/teardown";
import { Code, RpcError } from "../../src/ttrpc/status";

function fakeShim(log: string[], fail: Partial<Record<"Kill" | "Wait" | "Delete" | "Shutdown", number>> = {}) {
  const call = (name: "Kill" | "Wait" | "Delete" | "Shutdown") => async (req: { id: string }) => {
    log.push(`${name} ${req.id}`);
    if (fail[name] !== undefined) throw new RpcError(fail[name]!, `${name} failed`);
    return {};
  };
  return { Kill: call("Kill"), Wait: call("Wait"), Delete: call("Delete"), Shutdown: call("Shutdown") };
}

function held(log: string[], id: string, address: string, o: Partial<HeldTask> = {}, fail = {}): HeldTask {
  return { id, bundle: `/b/${id}`, address, task: fakeShim(log, fail), close: () => log.push(`close ${id}`), ...o };
}

const recordDelete = (log: string[]) => async (id: string) => void log.push(`delete ${id}`);

describe("teardownTasks", () => {
  it("takes each task down as containerd does, last created first, `delete` after each", async () => {
    const log: string[] = [];
    const r = await teardownTasks([held(log, "pod", "unix:///s/a"), held(log, "c1", "unix:///s/a")], recordDelete(log));
    expect(r).toEqual({ clean: true, notes: [] });
    expect(log).toEqual([
      ...["Kill c1", "Wait c1", "Delete c1", "Shutdown c1", "close c1", "delete c1"],
      ...["Kill pod", "Wait pod", "Delete pod", "Shutdown pod", "close pod", "delete pod"],
    ]);
  });

  it("runs `delete` only on the shim's last task, and only after a failure, in unclean mode", async () => {
    const log: string[] = [];
    const tasks = [held(log, "pod", "unix:///s/a"), held(log, "c1", "unix:///s/a", {}, { Delete: Code.Unavailable }), held(log, "solo", "unix:///s/b")];
    const r = await teardownTasks(tasks, recordDelete(log), { shimDelete: "unclean" });
    expect(r.clean).toBe(false);
    expect(log.filter((l) => l.startsWith("delete "))).toEqual(["delete pod"]);
  });

  it("counts NotFound on Delete as done, and a task with no connection as unclean", async () => {
    const log: string[] = [];
    expect((await teardownTasks([held(log, "gone", "unix:///s/a", {}, { Delete: Code.NotFound })], recordDelete(log), { shimDelete: "unclean" })).clean).toBe(true);
    const r = await teardownTasks([held(log, "cut", "unix:///s/c", { task: undefined })], recordDelete(log), { shimDelete: "unclean" });
    expect(r.clean).toBe(false);
    expect(log.slice(-2)).toEqual(["close cut", "delete cut"]);
  });

  it("sends a sandboxed task no Shutdown and runs no `delete` for it: its shim ends with the sandbox", async () => {
    const log: string[] = [];
    await teardownTasks([held(log, "app", "unix:///s/p", { sandboxed: true })], recordDelete(log));
    expect(log).toEqual(["Kill app", "Wait app", "Delete app", "close app"]);
  });

  it("kills and reports a shim still alive after its last task, but waits for no shared one", async () => {
    const straggler = spawn("sleep", ["30"], { stdio: "ignore" });
    const pid = straggler.pid!;
    try {
      const log: string[] = [];
      const closing = (id: string) => () => log.push(`close ${id}: shim ${alive(pid) ? "alive" : "gone"}`);
      const tasks = [held(log, "pod", "unix:///nonexistent/a", { shimPid: pid, close: closing("pod") }), held(log, "c1", "unix:///nonexistent/a", { shimPid: pid, close: closing("c1") })];
      const r = await teardownTasks(tasks, recordDelete(log), { reapMs: 300 });
      expect(r.notes).toEqual([`shim ${pid} still running after Delete, Shutdown and \`delete\`: killed`]);
      // Not reaped after c1: the pod's task still needed it.
      expect(log.filter((l) => l.startsWith("close"))).toEqual(["close c1: shim alive", "close pod: shim alive"]);
      await new Promise((res) => straggler.once("exit", res));
      expect(alive(pid)).toBe(false);
    } finally {
      straggler.kill("SIGKILL");
    }
  });
});

describe("teardownSandbox", () => {
  it("stops, shuts down and closes; `delete` when the pod's tasks went wrong", async () => {
    const log: string[] = [];
    const sandbox = {
      StopSandbox: async (r: { sandboxId: string }) => void log.push(`StopSandbox ${r.sandboxId}`),
      ShutdownSandbox: async (r: { sandboxId: string }) => void log.push(`ShutdownSandbox ${r.sandboxId}`),
    };
    const h = { id: "pod", bundle: "/b/pod", sandbox, close: () => log.push("close pod") };
    expect((await teardownSandbox(h, recordDelete(log), { shimDelete: "unclean" })).clean).toBe(true);
    expect(log).toEqual(["StopSandbox pod", "ShutdownSandbox pod", "close pod"]);
    log.length = 0;
    expect((await teardownSandbox(h, recordDelete(log), { shimDelete: "unclean", tasksClean: false })).clean).toBe(false);
    expect(log.at(-1)).toBe("delete pod");
  });
});
