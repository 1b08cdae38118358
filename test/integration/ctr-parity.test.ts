// Task API parity: the same ctr matrix through io.containerd.runc.v2 and
// io.containerd.shimlab.v2 on the tests' own containerd, with the same
// observable results (pids, times and paths normalised).
import { describe, it, expect } from "vitest";
import { shows } from "../../src/harness/peers/differences";
import { missing } from "../helpers/env";
import { useContainerd } from "../helpers/containerd-fixture";
import { EventWatch, ctrInTerminal, forceRemove, normalise, type CtrEvent } from "../helpers/ctr";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const RUNTIMES = { runc: "io.containerd.runc.v2", shimlab: "io.containerd.shimlab.v2" } as const;
type Rt = keyof typeof RUNTIMES;

interface MatrixResult {
  exec: { code: number | null; out: string };
  execTty: { code: number | null; out: string };
  runTty: { code: number | null; out: string };
  statuses: string[];
  ps: { code: number | null; lines: number };
  metrics: { code: number | null; hasMemory: boolean; hasCpu: boolean };
  killAllTerm: { code: number | null; statusAfter: string };
  deleteRunning: { code: number | null; err: string };
  killUnknown: { code: number | null; err: string };
  checkpoint: { code: number | null };
  killAfterExit: { code: number | null; err: string };
  deleteAfterExit: { code: number | null };
  events: string[];
}

describe.skipIf(skip)("ctr parity: runc's shim and shimlab", () => {
  const fx = useContainerd();
  const results: Partial<Record<Rt, MatrixResult>> = {};

  const status = async (id: string) => {
    const ls = await fx.ctd.ctr(["task", "ls"]);
    const m = new RegExp(`^${id}\\s+\\d+\\s+(\\w+)`, "m").exec(ls.out);
    return m ? m[1] : "ABSENT";
  };
  const waitStatus = async (id: string, want: string) => {
    for (let i = 0; i < 100; i++) {
      if ((await status(id)) === want) return want;
      await new Promise((r) => setTimeout(r, 50));
    }
    return status(id);
  };

  async function matrix(rt: Rt): Promise<MatrixResult> {
    const runtime = RUNTIMES[rt];
    const id = `m-${rt}`;
    const watch = new EventWatch(fx.ctd);
    await watch.ready();
    const r: Partial<MatrixResult> = {};
    try {
      const run = await fx.ctd.ctr(["run", "-d", "--runtime", runtime, "--rootfs", fx.rootfs, id, "/bin/sh", "-c", "sleep 300"]);
      expect(run.code, run.err).toBe(0);
      const ex = await fx.ctd.ctr(["task", "exec", "--exec-id", "e1", id, "/bin/sh", "-c", "echo hi; exit 3"]);
      r.exec = { code: ex.code, out: ex.out };
      r.execTty = await ctrInTerminal(fx.ctd, ["task", "exec", "-t", "--exec-id", "e2", id, "/bin/sh", "-c", "sleep 1; stty size; exit 6"], 33, 77);
      r.statuses = [];
      expect((await fx.ctd.ctr(["task", "pause", id])).code).toBe(0);
      r.statuses.push(await status(id));
      expect((await fx.ctd.ctr(["task", "resume", id])).code).toBe(0);
      r.statuses.push(await status(id));
      const ps = await fx.ctd.ctr(["task", "ps", id]);
      r.ps = { code: ps.code, lines: ps.out.trim().split("\n").length };
      const metrics = await fx.ctd.ctr(["task", "metrics", id]);
      r.metrics = { code: metrics.code, hasMemory: /memory\.usage_in_bytes\s+\d+/.test(metrics.out), hasCpu: /cpuacct\.usage\s+\d+/.test(metrics.out) };
      const ku = await fx.ctd.ctr(["task", "kill", "--exec-id", "nope", id]);
      r.killUnknown = { code: ku.code, err: ku.err.trim() };
      const delRunning = await fx.ctd.ctr(["task", "delete", id]);
      r.deleteRunning = { code: delRunning.code, err: delRunning.err.replace(/^time=.*\n/m, "").trim() };
      const cp = await fx.ctd.ctr(["task", "checkpoint", id]);
      r.checkpoint = { code: cp.code };
      // sleep is pid 1 of its namespace: it has no SIGTERM handler, so TERM does not kill it
      const ka = await fx.ctd.ctr(["task", "kill", "-a", "-s", "SIGTERM", id]);
      await new Promise((res) => setTimeout(res, 300));
      r.killAllTerm = { code: ka.code, statusAfter: await status(id) };
      expect((await fx.ctd.ctr(["task", "kill", "-s", "SIGKILL", id])).code).toBe(0);
      r.statuses.push(await waitStatus(id, "STOPPED"));
      const kae = await fx.ctd.ctr(["task", "kill", "-s", "SIGKILL", id]);
      r.killAfterExit = { code: kae.code, err: kae.err.trim() };
      const del = await fx.ctd.ctr(["task", "delete", id]);
      r.deleteAfterExit = { code: del.code };
      await fx.ctd.ctr(["container", "rm", id]);
      r.runTty = await ctrInTerminal(fx.ctd, ["run", "--rm", "-t", "--runtime", runtime, "--rootfs", fx.rootfs, `${id}-t`, "/bin/sh", "-c", "sleep 1; stty size; exit 4"], 40, 100);
      // ctr deletes the container after the task: its /containers/delete comes last, and the
      // shim's /tasks/delete (which 2.1's runc shim can lose) has had its chance by then.
      await watch.waitFor((e) => e.topic === "/containers/delete" && e.payload.id === `${id}-t`);
      await new Promise((res) => setTimeout(res, 300));
      r.events = [...watch.forContainer(id).map((e) => normalise(e, id)), ...watch.forContainer(`${id}-t`).map((e) => normalise(e, `${id}-t`))];
    } finally {
      watch.stop();
      await forceRemove(fx.ctd, id);
    }
    return r as MatrixResult;
  }

  for (const rt of Object.keys(RUNTIMES) as Rt[]) {
    it(`runs the ctr matrix on ${rt}`, async () => {
      const r = await matrix(rt);
      results[rt] = r;
      expect(r.exec).toEqual({ code: 3, out: "hi\n" });
      expect(r.execTty.code).toBe(6);
      expect(r.execTty.out).toContain("33 77");
      expect(r.runTty.code).toBe(4);
      expect(r.runTty.out).toContain("40 100");
      expect(r.statuses).toEqual(["PAUSED", "RUNNING", "STOPPED"]);
      expect(r.ps.code).toBe(0);
      expect(r.metrics).toEqual({ code: 0, hasMemory: true, hasCpu: true });
      expect(r.killUnknown).toEqual({ code: 1, err: "ctr: process does not exist nope: not found" });
      expect(r.deleteRunning.code).toBe(1);
      expect(r.deleteRunning.err).toContain("task must be stopped before deletion: running: failed precondition");
      expect(r.checkpoint.code).not.toBe(0);
      expect(r.killAllTerm).toEqual({ code: 0, statusAfter: "RUNNING" });
      expect(r.killAfterExit).toEqual({ code: 1, err: "ctr: process already finished: not found" });
      expect(r.deleteAfterExit.code).toBe(0);
    });
  }

  it("gives the same normalised event sequences on both", () => {
    if (!results.runc || !results.shimlab) throw new Error("a matrix run failed before");
    const swap = (l: string[]) => l.map((s) => s.replace(/m-(runc|shimlab)/g, "m-X"));
    const shimlab = swap(results.shimlab.events);
    const runc = swap(results.runc.events);
    if (shows(fx.ctd.peer, "runc-task-delete-lost") && count(runc, "/tasks/delete") < count(shimlab, "/tasks/delete")) {
      // 2.1's runc shim can exit before it forwards /tasks/delete; shimlab must still send both,
      // and everything else must agree.
      expect(count(shimlab, "/tasks/delete")).toBe(2);
      const rest = (l: string[]) => l.filter((e) => !e.startsWith("/tasks/delete "));
      expect(rest(shimlab)).toEqual(rest(runc));
    } else {
      expect(shimlab).toEqual(runc);
    }
    expect(results.shimlab.events.length).toBeGreaterThan(10);
    if (process.env.SHIMLAB_SHOW_EVENTS) console.log(swap(results.shimlab.events).join("\n"));
  });

  it("explains checkpoint: shimlab answers not implemented", async () => {
    const id = "cp-shimlab";
    await fx.ctd.ctr(["run", "-d", "--runtime", RUNTIMES.shimlab, "--rootfs", fx.rootfs, id, "/bin/sleep", "300"], { check: true });
    const cp = await fx.ctd.ctr(["task", "checkpoint", id]);
    expect(cp.code).toBe(1);
    expect(cp.err).toContain("checkpoint is not supported by shimlab");
    expect(cp.err).toContain("not implemented");
    await fx.ctd.ctr(["task", "kill", "-s", "SIGKILL", id]);
    await waitStatus(id, "STOPPED");
    await fx.ctd.ctr(["task", "delete", id], { check: true });
    await fx.ctd.ctr(["container", "rm", id], { check: true });
  });

  for (const rt of Object.keys(RUNTIMES) as Rt[]) {
    it(`keeps every exit code and the ordering rules with 50 concurrent execs (${rt})`, async () => {
      const id = `x-${rt}`;
      const watch = new EventWatch(fx.ctd);
      await watch.ready();
      try {
        await fx.ctd.ctr(["run", "-d", "--runtime", RUNTIMES[rt], "--rootfs", fx.rootfs, id, "/bin/sleep", "300"], { check: true });
        const n = 50;
        const codes = await Promise.all(
          Array.from({ length: n }, (_, i) => fx.ctd.ctr(["task", "exec", "--exec-id", `e${i}`, id, "/bin/sh", "-c", `exit ${i % 64}`]).then((r) => r.code)),
        );
        expect(codes).toEqual(Array.from({ length: n }, (_, i) => i % 64));
        // Long-running execs, then the init dies: their exits must all come before the init's.
        for (let i = 0; i < 3; i++) {
          const child = fx.ctd.ctr(["task", "exec", "--exec-id", `long${i}`, id, "/bin/sleep", "300"]);
          void child;
        }
        await watch.waitFor((e) => e.topic === "/tasks/exec-started" && e.payload.exec_id === "long2");
        await fx.ctd.ctr(["task", "kill", "-s", "SIGKILL", id], { check: true });
        await watch.waitFor((e) => e.topic === "/tasks/exit" && e.payload.id === id);
        await new Promise((r) => setTimeout(r, 300));
        checkOrdering(watch.forContainer(id), id);
        const exits = watch.forContainer(id).filter((e) => e.topic === "/tasks/exit" && e.payload.id !== id && /^e\d+$/.test(e.payload.id));
        expect(exits.length).toBe(n);
        for (const e of exits) expect(e.payload.exit_status ?? 0).toBe(Number(e.payload.id.slice(1)) % 64);
        await fx.ctd.ctr(["task", "delete", id], { check: true });
        await fx.ctd.ctr(["container", "rm", id], { check: true });
      } finally {
        watch.stop();
        await forceRemove(fx.ctd, id);
      }
    }, 120_000);
  }

  for (const rt of Object.keys(RUNTIMES) as Rt[]) {
    it(`publishes /tasks/oom before /tasks/exit for an OOM-killed task (${rt})`, async () => {
      const id = `oom-${rt}`;
      const watch = new EventWatch(fx.ctd);
      await watch.ready();
      try {
        const r = await fx.ctd.ctr([
          "run", "--rm", "--memory-limit", String(32 << 20), "--runtime", RUNTIMES[rt], "--rootfs", fx.rootfs, id,
          "/bin/sh", "-c", "a=$(head -c 300000000 /dev/zero | tr '\\0' x); echo ${#a}",
        ]);
        expect(r.code).toBe(137);
        // ctr run --rm removes the container after the task: /containers/delete comes last, and the
        // shim's /tasks/delete (which 2.1's runc shim sometimes loses) has had its chance by then.
        await watch.waitFor((e) => e.topic === "/containers/delete" && e.payload.id === id);
        const topics = watch.forContainer(id).map((e) => e.topic);
        expect(topics).toContain("/tasks/oom");
        expect(topics.indexOf("/tasks/oom")).toBeLessThan(topics.indexOf("/tasks/exit"));
        // shimlab checks the cgroup before the exit goes out, so every OOM precedes it
        if (rt === "shimlab") expect(topics.lastIndexOf("/tasks/oom")).toBeLessThan(topics.indexOf("/tasks/exit"));
      } finally {
        watch.stop();
        await forceRemove(fx.ctd, id);
      }
    });
  }
});

/** runc's shim's ordering rules, checked on a container's captured events. */
function checkOrdering(events: CtrEvent[], id: string): void {
  const idx = (pred: (e: CtrEvent) => boolean) => events.findIndex(pred);
  const started = new Map<string, number>();
  events.forEach((e, i) => {
    if (e.topic === "/tasks/start") started.set(id, i);
    if (e.topic === "/tasks/exec-started") started.set(e.payload.exec_id, i);
  });
  const initExit = idx((e) => e.topic === "/tasks/exit" && e.payload.id === id);
  expect(initExit).toBeGreaterThan(-1);
  events.forEach((e, i) => {
    if (e.topic !== "/tasks/exit") return;
    const s = started.get(e.payload.id);
    expect(s, `exit of ${e.payload.id} without a start`).toBeDefined();
    expect(i, `exit of ${e.payload.id} before its start`).toBeGreaterThan(s!);
    if (e.payload.id !== id) expect(i, `exec ${e.payload.id} exit after the init's`).toBeLessThan(initExit);
  });
  const added = new Set(events.filter((e) => e.topic === "/tasks/exec-added").map((e) => e.payload.exec_id));
  for (const e of events.filter((x) => x.topic === "/tasks/exec-started")) expect(added.has(e.payload.exec_id)).toBe(true);
}

function count(events: string[], topic: string): number {
  return events.filter((e) => e.startsWith(topic + " ")).length;
}
