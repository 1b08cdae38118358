// The Task service's rules as containerd holds a shim to them (docs/contract/),
// run without root: the service over ttrpc as containerd calls it, the mock
// agent in this process (src/testing/in-process-hypervisor.ts), containers as
// plain host processes, events into a recorder. Test titles name the rules.
// Refusals are asserted on the status code containerd reads off the wire.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { startTaskCore, type TaskCore, type TaskCoreOptions } from "../../src/testing/task-core";
import { HostRuntime } from "../../src/mock-agent/runtime/host";
import type { Runtime } from "../../src/mock-agent/runtime/types";
import { refusalOf, statusOf } from "../../src/testing/wire-status";
import { childrenOf } from "../../src/testing/children";
import { ProcessDetails } from "../../src/gen/containerd.runc.v1";
import { hasNative } from "../../src/native";

// containerd's task.Status on the wire, written here rather than imported so that a wrong constant in the service shows.
const CREATED = 1;
const RUNNING = 2;
const STOPPED = 3;
const PAUSED = 4;
/** Go's zero time, which runc's shim sends for "not exited" (exit.not-exited-time). */
const NOT_EXITED = { seconds: -62135596800, nanos: 0 };
const SIGKILL = 9;
const SIGTERM = 15;
const SIGUSR1 = 10;

let core: TaskCore | null = null;
afterEach(async () => {
  await core?.close();
  core = null;
  // Every process a test started was killed and reaped: none left, not even a zombie.
  expect(childrenOf()).toEqual([]);
});

async function open(o: TaskCoreOptions = {}): Promise<TaskCore> {
  core = await startTaskCore(o);
  return core;
}

/**
 * The host runtime, with every exec's exit reaching the agent ms late: the
 * init's exit then reaches the shim first, which is when the order of their
 * TaskExits is the shim's to keep, not the processes' to give.
 */
function lateExecExits(ms: number): Runtime {
  const rt = new HostRuntime();
  const exec = rt.exec.bind(rt);
  rt.exec = async (id, execId, proc) => {
    const p = await exec(id, execId, proc);
    return {
      pid: p.pid,
      stdin: p.stdin,
      stdout: p.stdout,
      stderr: p.stderr,
      terminal: p.terminal,
      resize: (r, c) => p.resize(r, c),
      closeStdin: () => p.closeStdin(),
      exit: p.exit.then((s) => new Promise<number>((r) => setTimeout(() => r(s), ms))),
    };
  };
  return rt;
}

/**
 * A command that runs until the test lets it go, then exits with `code`: a
 * process's states can be read while it surely runs, with no sleep to race.
 */
function held(code: number): { args: string[]; release: (bundle: string) => void } {
  return {
    args: ["/bin/sh", "-c", `until [ -e go ]; do sleep 0.01; done; echo done; exit ${code}`],
    // The host runtime runs the process in its rootfs directory.
    release: (bundle) => fs.writeFileSync(path.join(bundle, "rootfs", "go"), ""),
  };
}

const SLEEP = ["/bin/sleep", "300"];

async function appears(file: string, timeoutMs = 3_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !fs.existsSync(file); ) {
    if (Date.now() > end) throw new Error(`${path.basename(file)} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function runningTask(c: TaskCore, id: string, args = SLEEP): Promise<{ bundle: string; pid: number }> {
  const bundle = c.bundle(id, { args });
  const { pid } = await c.task.Create({ id, bundle });
  await c.task.Start({ id });
  return { bundle, pid };
}

describe("Task service: an init's life", () => {
  it("create → start → wait → delete answers the exit code everywhere (create.state-created, exit.not-exited-time, state.echoes-create, start.running, exit.normal-status, wait.after-exit, state.stopped-after-wait, delete.response, exit.consistent, exit.exited-at)", async () => {
    const c = await open();
    const h = held(3);
    const bundle = c.bundle("life", { args: h.args });
    const created = await c.task.Create({ id: "life", bundle, stdout: "life.out", stderr: "life.err" });
    expect(created.pid).toBeGreaterThan(0);

    const st0 = await c.task.State({ id: "life" });
    expect(st0).toMatchObject({ id: "life", bundle, pid: created.pid, status: CREATED, stdin: "", stdout: "life.out", stderr: "life.err", terminal: false, exitStatus: 0 });
    expect(st0.exitedAt).toEqual(NOT_EXITED);

    const started = await c.task.Start({ id: "life" });
    expect(started.pid).toBe(created.pid);
    expect((await c.task.State({ id: "life" })).status).toBe(RUNNING);

    h.release(bundle);
    const w = await c.task.Wait({ id: "life" });
    expect(w.exitStatus).toBe(3);
    expect(w.exitedAt!.seconds).toBeGreaterThan(0);
    expect(c.output("life.out")).toBe("done\n");

    const st1 = await c.task.State({ id: "life" });
    expect([st1.status, st1.exitStatus, st1.exitedAt]).toEqual([STOPPED, 3, w.exitedAt]);
    // A second Wait answers at once, the same.
    expect(await c.task.Wait({ id: "life" })).toEqual(w);

    const d = await c.task.Delete({ id: "life" });
    expect(d).toEqual({ pid: created.pid, exitStatus: 3, exitedAt: w.exitedAt });
  });

  it("publishes TaskCreate, TaskStart, TaskExit, TaskDelete once each, in order, with the fields containerd reads (events.create-fields, events.exit-fields, events.delete-fields, events.start-after-create, events.exit-after-start, events.delete-after-exit, events.once, events.bare-type-url, events.event-before-reply, events.exit-published)", async () => {
    const c = await open();
    const bundle = c.bundle("ev", { args: ["/bin/sh", "-c", "exit 7"] });
    const { pid } = await c.task.Create({ id: "ev", bundle, stdout: "ev.out" });
    expect(c.events.trail).toEqual(["/tasks/create ev"]); // out before the answer
    await c.task.Start({ id: "ev" });
    expect(c.events.trail[1]).toBe("/tasks/start ev");
    const w = await c.task.Wait({ id: "ev" });
    await c.task.Delete({ id: "ev" });

    expect(c.events.trail).toEqual(["/tasks/create ev", "/tasks/start ev", "/tasks/exit ev", "/tasks/delete ev"]);
    const [create, start, exit, del] = c.events.events;
    expect(create.typeUrl).toBe("containerd.events.TaskCreate");
    expect(create.event).toMatchObject({ containerId: "ev", bundle, pid, io: { stdin: "", stdout: "ev.out", stderr: "", terminal: false } });
    expect(start.typeUrl).toBe("containerd.events.TaskStart");
    expect(start.event).toMatchObject({ containerId: "ev", pid });
    expect(exit.typeUrl).toBe("containerd.events.TaskExit");
    expect(exit.event).toMatchObject({ containerId: "ev", id: "ev", pid, exitStatus: 7, exitedAt: w.exitedAt });
    expect(del.typeUrl).toBe("containerd.events.TaskDelete");
    expect(del.event).toMatchObject({ containerId: "ev", pid, exitStatus: 7, exitedAt: w.exitedAt });
  });

  it("reports a signal's death as 128 + the signal (exit.signal-128-plus)", async () => {
    const c = await open();
    await runningTask(c, "sig");
    await c.task.Exec({ id: "sig", execId: "k", spec: c.execSpec(SLEEP) });
    await c.task.Start({ id: "sig", execId: "k" });
    await c.task.Kill({ id: "sig", execId: "k", signal: SIGKILL });
    expect((await c.task.Wait({ id: "sig", execId: "k" })).exitStatus).toBe(137);
    await c.task.Kill({ id: "sig", signal: SIGTERM });
    expect((await c.task.Wait({ id: "sig" })).exitStatus).toBe(143);
    expect((await c.task.Delete({ id: "sig" })).exitStatus).toBe(143);
    expect(c.events.of("/tasks/exit").map((e) => [e.event.id, e.event.exitStatus])).toEqual([
      ["k", 137],
      ["sig", 143],
    ]);
  });

  it("refuses a second Start and changes nothing (start.not-twice, errors.illegal-move)", async () => {
    const c = await open();
    const h = held(0);
    const bundle = c.bundle("twice", { args: h.args });
    await c.task.Create({ id: "twice", bundle });
    await c.task.Start({ id: "twice" });
    expect(await refusalOf(c.task.Start({ id: "twice" }))).toMatch(/^FailedPrecondition: cannot start a running process/);
    expect((await c.task.State({ id: "twice" })).status).toBe(RUNNING);
    h.release(bundle);
    await c.task.Wait({ id: "twice" });
    expect(await statusOf(c.task.Start({ id: "twice" }))).toBe("FailedPrecondition");
    expect((await c.task.State({ id: "twice" })).status).toBe(STOPPED);
    expect(c.events.of("/tasks/start")).toHaveLength(1);
  });

  it("refuses to Delete a running task, which keeps running (delete.not-running)", async () => {
    const c = await open();
    await runningTask(c, "busy");
    expect(await refusalOf(c.task.Delete({ id: "busy" }))).toMatch(/^FailedPrecondition: cannot delete a running process/);
    expect((await c.task.State({ id: "busy" })).status).toBe(RUNNING);
    expect(c.events.of("/tasks/delete")).toHaveLength(0);
    await c.task.Kill({ id: "busy", signal: SIGKILL });
    await c.task.Wait({ id: "busy" });
    expect(await statusOf(c.task.Delete({ id: "busy" }))).toBe("OK");
  });

  it("deletes a task that never started, TaskDelete after TaskCreate with no TaskStart (delete.created, events.delete-after-exit)", async () => {
    const c = await open();
    const bundle = c.bundle("never", { args: SLEEP });
    const { pid } = await c.task.Create({ id: "never", bundle });
    const d = await c.task.Delete({ id: "never" });
    expect(d).toEqual({ pid, exitStatus: 0, exitedAt: NOT_EXITED });
    expect(c.events.trail).toEqual(["/tasks/create never", "/tasks/delete never"]);
  });

  it("kills a created init: STOPPED with 137, and Wait returns (kill.created-init)", async () => {
    const c = await open();
    const bundle = c.bundle("stillborn", { args: SLEEP });
    await c.task.Create({ id: "stillborn", bundle });
    const waiting = c.task.Wait({ id: "stillborn" });
    await c.task.Kill({ id: "stillborn", signal: SIGKILL });
    expect((await waiting).exitStatus).toBe(137);
    const st = await c.task.State({ id: "stillborn" });
    expect([st.status, st.exitStatus]).toEqual([STOPPED, 137]);
    expect((await c.task.Delete({ id: "stillborn" })).exitStatus).toBe(137);
    expect(c.events.of("/tasks/start")).toHaveLength(0);
  });

  it("answers Kill of an exited init NotFound, but Kill --all OK (kill.exited-init, kill.all-after-exit)", async () => {
    const c = await open();
    await runningTask(c, "gone", ["/bin/true"]);
    await c.task.Wait({ id: "gone" });
    expect(await refusalOf(c.task.Kill({ id: "gone", signal: SIGKILL }))).toBe("NotFound: process already finished: not found");
    expect(await statusOf(c.task.Kill({ id: "gone", signal: SIGKILL, all: true }))).toBe("OK");
  });
});

describe("Task service: ids it does not hold", () => {
  it("answers NotFound for every call naming an unknown container, before and after a sandbox exists (task.unknown-container, kill.unknown-container, errors.tolerated)", async () => {
    const c = await open();
    const calls = (id: string) => ({
      State: c.task.State({ id }),
      Start: c.task.Start({ id }),
      Delete: c.task.Delete({ id }),
      Kill: c.task.Kill({ id, signal: SIGKILL }),
      Wait: c.task.Wait({ id }),
      Pids: c.task.Pids({ id }),
      Pause: c.task.Pause({ id }),
      Resume: c.task.Resume({ id }),
      Exec: c.task.Exec({ id, execId: "e", spec: c.execSpec(["/bin/true"]) }),
      Stats: c.task.Stats({ id }),
      Update: c.task.Update({ id }),
      ResizePty: c.task.ResizePty({ id, width: 80, height: 24 }),
      CloseIO: c.task.CloseIO({ id, stdin: true }),
      Checkpoint: c.task.Checkpoint({ id, path: "/nowhere" }),
    });
    const answers = async (id: string) => Object.fromEntries(await Promise.all(Object.entries(calls(id)).map(async ([k, p]) => [k, await statusOf(p)])));
    const allNotFound = Object.fromEntries(["State", "Start", "Delete", "Kill", "Wait", "Pids", "Pause", "Resume", "Exec", "Stats", "Update", "ResizePty", "CloseIO", "Checkpoint"].map((k) => [k, "NotFound"]));
    expect(await answers("nobody")).toEqual(allNotFound);
    await runningTask(c, "somebody");
    expect(await answers("nobody")).toEqual(allNotFound);
    expect(await refusalOf(c.task.State({ id: "nobody" }))).toBe("NotFound: container not created: not found");
  });

  it("answers NotFound for a deleted container: State, Delete, Wait and Kill (delete.then-gone)", async () => {
    const c = await open();
    await runningTask(c, "bye", ["/bin/true"]);
    await c.task.Wait({ id: "bye" });
    await c.task.Delete({ id: "bye" });
    const after = await Promise.all([c.task.State({ id: "bye" }), c.task.Delete({ id: "bye" }), c.task.Wait({ id: "bye" }), c.task.Kill({ id: "bye", signal: SIGKILL })].map(statusOf));
    expect(after).toEqual(["NotFound", "NotFound", "NotFound", "NotFound"]);
  });

  it("refuses a second Create of the same id AlreadyExists, and the first task is untouched", async () => {
    const c = await open();
    const { bundle } = await runningTask(c, "one");
    expect(await statusOf(c.task.Create({ id: "one", bundle }))).toBe("AlreadyExists");
    expect((await c.task.State({ id: "one" })).status).toBe(RUNNING);
    expect(c.events.of("/tasks/create")).toHaveLength(1);
  });

  it("answers NotFound for an exec id the container lacks: State, Wait, Start, Delete, Kill (exec.unknown-id, kill.unknown-exec)", async () => {
    const c = await open();
    await runningTask(c, "host");
    const execId = "nope";
    const answers = await Promise.all(
      [c.task.State({ id: "host", execId }), c.task.Wait({ id: "host", execId }), c.task.Start({ id: "host", execId }), c.task.Delete({ id: "host", execId }), c.task.Kill({ id: "host", execId, signal: SIGKILL })].map(statusOf),
    );
    expect(answers).toEqual(["NotFound", "NotFound", "NotFound", "NotFound", "NotFound"]);
    expect((await c.task.State({ id: "host" })).status).toBe(RUNNING);
  });
});

describe("Task service: execs", () => {
  it("goes Exec → Start → Wait → Delete with its states, refusing what each state forbids (exec.lifecycle, exec.duplicate-id, kill.exec-not-started, delete.not-running, kill.exited-exec, exec.delete-removes, pids.init, pids.execs)", async () => {
    const c = await open();
    const { bundle, pid } = await runningTask(c, "box");
    const h = held(5);
    await c.task.Exec({ id: "box", execId: "e1", spec: c.execSpec(h.args), stdout: "e1.out" });
    expect(await statusOf(c.task.Exec({ id: "box", execId: "e1", spec: c.execSpec(["/bin/true"]) }))).toBe("AlreadyExists");
    const st0 = await c.task.State({ id: "box", execId: "e1" });
    expect([st0.id, st0.status, st0.stdout, st0.exitedAt]).toEqual(["e1", CREATED, "e1.out", NOT_EXITED]);
    expect(await refusalOf(c.task.Kill({ id: "box", execId: "e1", signal: SIGKILL }))).toBe("FailedPrecondition: process not created: failed precondition");

    const started = await c.task.Start({ id: "box", execId: "e1" });
    expect(started.pid).toBeGreaterThan(0);
    expect((await c.task.State({ id: "box", execId: "e1" })).status).toBe(RUNNING);
    const pids = await c.task.Pids({ id: "box" });
    expect(pids.processes[0].pid).toBe(pid);
    expect(pids.processes.slice(1).map((p) => [p.pid, p.info?.typeUrl, p.info && ProcessDetails.decode(p.info.value).execId])).toEqual([[started.pid, "containerd.runc.v1.ProcessDetails", "e1"]]);
    expect(await statusOf(c.task.Delete({ id: "box", execId: "e1" }))).toBe("FailedPrecondition");

    // The exec exits by itself; the init runs on.
    fs.writeFileSync(path.join(bundle, "rootfs", "go"), "");
    const w = await c.task.Wait({ id: "box", execId: "e1" });
    expect(w.exitStatus).toBe(5);
    expect(c.output("e1.out")).toBe("done\n");
    const st1 = await c.task.State({ id: "box", execId: "e1" });
    expect([st1.status, st1.exitStatus, st1.exitedAt]).toEqual([STOPPED, 5, w.exitedAt]);
    expect(await refusalOf(c.task.Kill({ id: "box", execId: "e1", signal: SIGKILL }))).toBe("NotFound: process already finished: not found");
    expect((await c.task.Pids({ id: "box" })).processes).toHaveLength(1);

    expect(await c.task.Delete({ id: "box", execId: "e1" })).toEqual({ pid: started.pid, exitStatus: 5, exitedAt: w.exitedAt });
    expect(await Promise.all([c.task.State({ id: "box", execId: "e1" }), c.task.Wait({ id: "box", execId: "e1" })].map(statusOf))).toEqual(["NotFound", "NotFound"]);
    expect((await c.task.State({ id: "box" })).status).toBe(RUNNING);
  });

  it("publishes TaskExecAdded, TaskExecStarted and the exec's own TaskExit in order (events.exec-fields, events.exec-added-after-create, events.exec-started-after-added, events.exec-exit-after-started, events.event-before-reply)", async () => {
    const c = await open();
    await runningTask(c, "box");
    await c.task.Exec({ id: "box", execId: "e2", spec: c.execSpec(["/bin/sh", "-c", "exit 4"]) });
    expect(c.events.trail.at(-1)).toBe("/tasks/exec-added box/e2");
    const { pid } = await c.task.Start({ id: "box", execId: "e2" });
    expect(c.events.trail.at(-1)).toBe("/tasks/exec-started box/e2");
    const w = await c.task.Wait({ id: "box", execId: "e2" });
    expect(c.events.trail).toEqual(["/tasks/create box", "/tasks/start box", "/tasks/exec-added box/e2", "/tasks/exec-started box/e2", "/tasks/exit box/e2"]);
    const [, , added, started, exit] = c.events.events;
    expect(added.event).toMatchObject({ containerId: "box", execId: "e2" });
    expect(started.event).toMatchObject({ containerId: "box", execId: "e2", pid });
    expect(exit.event).toMatchObject({ containerId: "box", id: "e2", pid, exitStatus: 4, exitedAt: w.exitedAt });
  });

  it("refuses an exec with no spec, no args or a bad id InvalidArgument", async () => {
    const c = await open();
    await runningTask(c, "box");
    const noArgs = { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: Buffer.from(JSON.stringify({ args: [], cwd: "/" })) };
    const notJson = { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: Buffer.from("{ nope") };
    const answers = await Promise.all(
      [
        c.task.Exec({ id: "box", execId: "nospec" }),
        c.task.Exec({ id: "box", execId: "noargs", spec: noArgs }),
        c.task.Exec({ id: "box", execId: "notjson", spec: notJson }),
        c.task.Exec({ id: "box", execId: "bad/id", spec: c.execSpec(["/bin/true"]) }),
      ].map(statusOf),
    );
    expect(answers).toEqual(["InvalidArgument", "InvalidArgument", "InvalidArgument", "InvalidArgument"]);
    expect(c.events.of("/tasks/exec-added")).toHaveLength(0);
  });

  it("holds the init's TaskExit until its execs' exits are out, and starts no exec once the init is gone (events.init-exit-after-exec-exits, events.no-exec-start-after-init-exit)", async () => {
    const c = await open({ runtime: () => lateExecExits(150) });
    await runningTask(c, "box");
    await c.task.Exec({ id: "box", execId: "live", spec: c.execSpec(SLEEP) });
    await c.task.Start({ id: "box", execId: "live" });
    await c.task.Exec({ id: "box", execId: "late", spec: c.execSpec(SLEEP) });
    // The init alone is killed; its exec dies with it (the agent kills what the init leaves, as a pid namespace's end would).
    await c.task.Kill({ id: "box", signal: SIGKILL });
    expect((await c.task.Wait({ id: "box" })).exitStatus).toBe(137);
    expect((await c.task.Wait({ id: "box", execId: "live" })).exitStatus).toBe(137);
    await c.events.next((e) => e.topic === "/tasks/exit" && e.event.id === "box");
    const exits = c.events.of("/tasks/exit").map((e) => e.event.id);
    expect(exits).toEqual(["live", "box"]);
    expect(await statusOf(c.task.Start({ id: "box", execId: "late" }))).toBe("FailedPrecondition");
    expect(c.events.of("/tasks/exec-started").map((e) => e.event.execId)).toEqual(["live"]);
  });

  it("Kill --all reaches the execs too (kill.all-reaches-execs)", async () => {
    const c = await open();
    // A signal that ends the exec but not the init: were the init to die, its execs would be killed regardless.
    // Each says when its trap is set, so that the signal cannot come first.
    const loop = "while :; do sleep 0.01; done";
    const { bundle } = await runningTask(c, "box", ["/bin/sh", "-c", `trap '' USR1; touch init-ready; ${loop}`]);
    await c.task.Exec({ id: "box", execId: "x", spec: c.execSpec(["/bin/sh", "-c", `trap 'exit 42' USR1; touch exec-ready; ${loop}`]) });
    await c.task.Start({ id: "box", execId: "x" });
    await appears(path.join(bundle, "rootfs", "init-ready"));
    await appears(path.join(bundle, "rootfs", "exec-ready"));
    await c.task.Kill({ id: "box", signal: SIGUSR1, all: true });
    const exit = await c.events.next((e) => e.topic === "/tasks/exit" && e.event.id === "x", 3_000);
    expect(exit.event.exitStatus).toBe(42);
    expect((await c.task.State({ id: "box" })).status).toBe(RUNNING);
  });
});

describe("Task service: stdio", () => {
  it("gives the init and each exec streams of their own, stderr apart, all written before Wait answers (stdio.stderr-separate, stdio.exec-own)", async () => {
    const c = await open();
    const bundle = c.bundle("talk", { args: ["/bin/sh", "-c", "echo init-out; echo init-err >&2; exec sleep 300"] });
    await c.task.Create({ id: "talk", bundle, stdout: "init.out", stderr: "init.err" });
    await c.task.Start({ id: "talk" });
    // Enough output (about 2 MB) to take the shim many reads after the exec has exited.
    await c.task.Exec({ id: "talk", execId: "x", spec: c.execSpec(["/bin/sh", "-c", "seq 1 300000; echo exec-err >&2; exit 0"]), stdout: "x.out", stderr: "x.err" });
    await c.task.Start({ id: "talk", execId: "x" });
    await c.task.Wait({ id: "talk", execId: "x" });
    // Output is pumped to its end before the exit is waited for: nothing the exec wrote can arrive after its Wait.
    const out = c.output("x.out");
    expect(out.length).toBe(1_988_895); // the bytes of seq 1 300000
    expect(out.slice(-14)).toBe("299999\n300000\n");
    expect(c.output("x.err")).toBe("exec-err\n");
    await c.task.Kill({ id: "talk", signal: SIGKILL });
    await c.task.Wait({ id: "talk" });
    expect([c.output("init.out"), c.output("init.err")]).toEqual(["init-out\n", "init-err\n"]);
  });

  it("carries what the client writes to the process's stdin, and CloseIO gives it end of file (stdio.stdin-closeio, stdio.exec-stdin)", async () => {
    const c = await open();
    await runningTask(c, "box");
    await c.task.Exec({ id: "box", execId: "cat", spec: c.execSpec(["/bin/cat"]), stdin: "cat.in", stdout: "cat.out" });
    await c.task.Start({ id: "box", execId: "cat" });
    c.input("cat.in").write("hello\n");
    await c.task.CloseIO({ id: "box", execId: "cat", stdin: true });
    expect((await c.task.Wait({ id: "box", execId: "cat" }, { timeoutMs: 5_000 })).exitStatus).toBe(0);
    expect(c.output("cat.out")).toBe("hello\n");
  });
});

describe.skipIf(!hasNative())("Task service: terminals (the native addon opens the pty)", () => {
  it("gives an exec with terminal=true a pty of its own, whose window ResizePty sets (tty.exec, tty.output, tty.resize)", async () => {
    const c = await open();
    const { bundle } = await runningTask(c, "box");
    const script = "test -t 0 && test -t 1 && echo on-a-tty; until [ -e go ]; do sleep 0.01; done; stty size";
    await c.task.Exec({ id: "box", execId: "t", spec: c.execSpec(["/bin/sh", "-c", script]), terminal: true, stdout: "t.out" });
    await c.task.Start({ id: "box", execId: "t" });
    expect((await c.task.State({ id: "box", execId: "t" })).terminal).toBe(true);
    await c.task.ResizePty({ id: "box", execId: "t", width: 100, height: 40 });
    fs.writeFileSync(path.join(bundle, "rootfs", "go"), "");
    expect((await c.task.Wait({ id: "box", execId: "t" }, { timeoutMs: 5_000 })).exitStatus).toBe(0);
    // A pty turns "\n" into "\r\n".
    expect(c.output("t.out")).toBe("on-a-tty\r\n40 100\r\n");
    // The init has no terminal to resize.
    expect(await statusOf(c.task.ResizePty({ id: "box", width: 80, height: 24 }))).toBe("FailedPrecondition");
  });
});

describe("Task service: pause and resume", () => {
  it("reports PAUSED for the task and its execs, refuses Delete, and RUNNING again after Resume, with TaskPaused then TaskResumed (pause.states, state.exec-paused, delete.not-paused, events.paused-resumed)", async () => {
    const c = await open();
    await runningTask(c, "nap");
    await c.task.Exec({ id: "nap", execId: "x", spec: c.execSpec(SLEEP) });
    await c.task.Start({ id: "nap", execId: "x" });
    await c.task.Pause({ id: "nap" });
    expect((await c.task.State({ id: "nap" })).status).toBe(PAUSED);
    expect((await c.task.State({ id: "nap", execId: "x" })).status).toBe(PAUSED);
    expect(await refusalOf(c.task.Delete({ id: "nap" }))).toMatch(/^FailedPrecondition: cannot delete a paused process/);
    await c.task.Resume({ id: "nap" });
    expect((await c.task.State({ id: "nap" })).status).toBe(RUNNING);
    expect((await c.task.State({ id: "nap", execId: "x" })).status).toBe(RUNNING);
    expect(c.events.trail.filter((t) => /paused|resumed/.test(t))).toEqual(["/tasks/paused nap", "/tasks/resumed nap"]);
  });

  it("SIGKILL reaches a paused task, and a stopped one cannot be paused (kill.paused, pause.not-stopped)", async () => {
    const c = await open();
    await runningTask(c, "nap");
    await c.task.Pause({ id: "nap" });
    await c.task.Kill({ id: "nap", signal: SIGKILL });
    expect((await c.task.Wait({ id: "nap" })).exitStatus).toBe(137);
    expect((await c.task.State({ id: "nap" })).status).toBe(STOPPED);
    expect(await statusOf(c.task.Pause({ id: "nap" }))).toBe("FailedPrecondition");
    expect(c.events.of("/tasks/paused")).toHaveLength(1);
  });

  it("cannot Resume a task that is not paused", async () => {
    const c = await open();
    await runningTask(c, "awake");
    expect(await statusOf(c.task.Resume({ id: "awake" }))).toBe("FailedPrecondition");
    expect(c.events.of("/tasks/resumed")).toHaveLength(0);
  });
});

describe("Task service: the connection and the shim", () => {
  it("answers State, Pids and Kill while a Wait blocks on the same connection (wire.concurrent-calls)", async () => {
    const c = await open();
    const h = held(0);
    const bundle = c.bundle("w", { args: h.args });
    await c.task.Create({ id: "w", bundle });
    await c.task.Start({ id: "w" });
    let settled = false;
    const waiting = c.task.Wait({ id: "w" }).finally(() => (settled = true));
    expect((await c.task.State({ id: "w" })).status).toBe(RUNNING);
    expect((await c.task.Pids({ id: "w" })).processes).toHaveLength(1);
    await c.task.Kill({ id: "w", signal: 0 }); // signal 0: a liveness probe, no effect
    expect(await statusOf(c.task.Delete({ id: "w" }))).toBe("FailedPrecondition");
    expect(settled).toBe(false);
    h.release(bundle);
    expect((await waiting).exitStatus).toBe(0);
  });

  it("Shutdown leaves a shim that still holds a task serving, and ends it once none is left (shutdown.keeps-serving, shutdown.exits-when-empty)", async () => {
    const c = await open();
    await runningTask(c, "last");
    await c.task.Shutdown({ id: "last" });
    await new Promise((r) => setImmediate(r));
    expect(c.shutdowns).toBe(0);
    expect((await c.task.State({ id: "last" })).status).toBe(RUNNING);
    await c.task.Kill({ id: "last", signal: SIGKILL });
    await c.task.Wait({ id: "last" });
    await c.task.Delete({ id: "last" });
    await c.task.Shutdown({ id: "last" });
    await c.task.Shutdown({ id: "last" });
    await new Promise((r) => setImmediate(r));
    expect(c.shutdowns).toBe(1);
  });

  it("Connect answers the shim's pid and the task's (connect.pids)", async () => {
    const c = await open();
    const { pid } = await runningTask(c, "conn");
    const r = await c.task.Connect({ id: "conn" });
    expect([r.shimPid, r.taskPid]).toEqual([process.pid, pid]);
  });

  it("Stats answers cgroups v1 Metrics in an Any; Checkpoint is Unimplemented; Update without resources is InvalidArgument (stats.metrics-any, task.unimplemented, checkpoint.optional)", async () => {
    const c = await open();
    await runningTask(c, "misc");
    const s = await c.task.Stats({ id: "misc" });
    expect(s.stats?.typeUrl).toBe("io.containerd.cgroups.v1.Metrics");
    expect(await refusalOf(c.task.Checkpoint({ id: "misc", path: "/nowhere" }))).toMatch(/^Unimplemented: /);
    expect(await statusOf(c.task.Update({ id: "misc" }))).toBe("InvalidArgument");
  });
});
