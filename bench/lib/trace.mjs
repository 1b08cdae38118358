// Where a lifecycle's time goes, from the kernel's own record: perf records
// fork/exec/exit of every process while the lifecycles run; the processes
// descending from our containerd and from this benchmark are then sorted into
// the shim's `start`, its daemon, runc create/start/delete, the container and
// the shim's `delete`, and each lifecycle is cut into phases at those points.
// No wrappers, and the same method for both runtimes.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, execFileSync } from "node:child_process";

export function perfAvailable() {
  try {
    execFileSync("perf", ["--version"], { stdio: "ignore" });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

export class ExecTrace {
  constructor() {
    this.file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-bench-perf-")), "perf.data");
    this.proc = null;
  }

  async start() {
    this.proc = spawn("perf", ["record", "-q", "-o", this.file, "-e", "sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit", "-a"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    this.proc.stderr.on("data", (d) => (err += d));
    this.exited = new Promise((r) => this.proc.on("exit", r));
    // perf needs a moment before it records
    await new Promise((r) => setTimeout(r, 700));
    if (this.proc.exitCode !== null) throw new Error(`perf record failed: ${err}`);
  }

  async stop() {
    this.proc.kill("SIGINT");
    await this.exited;
    const out = execFileSync("perf", ["script", "-i", this.file, "-F", "pid,tid,time,event,trace"], { maxBuffer: 1 << 28, stdio: ["ignore", "pipe", "ignore"] }).toString();
    fs.rmSync(path.dirname(this.file), { recursive: true, force: true });
    return parsePerf(out);
  }
}

/** Events as {kind, t (ms), pid, tid, child?, file?}. */
export function parsePerf(text) {
  const events = [];
  const re = /^\s*(\d+)\/(\d+)\s+([\d.]+):\s+sched:sched_process_(\w+):\s+(.*)$/;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    const e = { kind: m[4], t: Number(m[3]) * 1000, pid: Number(m[1]), tid: Number(m[2]) };
    if (e.kind === "fork") e.child = Number(/child_pid=(\d+)/.exec(m[5])?.[1]);
    else if (e.kind === "exec") e.file = /filename=(\S+)/.exec(m[5])?.[1];
    else if (e.kind === "exit") {
      e.exitPid = Number(/ pid=(\d+)/.exec(" " + m[5])?.[1]);
      e.groupDead = /group_dead=true/.test(m[5]);
    }
    events.push(e);
  }
  return events;
}

/** Processes descending from roots: pid → {pid, parent, execs:[{t,file}], exit}. */
export function processTree(events, roots, known = []) {
  const procs = new Map();
  const ensure = (pid, parent) => {
    let p = procs.get(pid);
    if (!p) procs.set(pid, (p = { pid, parent, execs: [], exit: null }));
    return p;
  };
  for (const r of roots) ensure(r, 0);
  // processes forked before the trace began (a factory's pool): [pid, parent, exec'd file]
  for (const [pid, parent, file] of known) ensure(pid, parent).execs.push({ t: -Infinity, file });
  for (const e of events) {
    if (e.kind === "fork" && procs.has(e.pid) && e.child !== e.pid) ensure(e.child, e.pid);
    else if (e.kind === "exec" && procs.has(e.pid)) procs.get(e.pid).execs.push({ t: e.t, file: e.file });
    else if (e.kind === "exit" && procs.has(e.exitPid) && (e.exitPid === e.tid || e.groupDead)) {
      const p = procs.get(e.exitPid);
      if (e.exitPid === e.tid) p.exit = e.t;
    }
  }
  return procs;
}

const base = (f) => (f ?? "").split("/").pop();

export const PHASES = ["ctr_to_start", "start", "create", "start_task", "exit", "delete_task", "delete", "tail"];

/**
 * One lifecycle per ctr process found under benchPid: phases in ms, or null for
 * a lifecycle whose processes could not all be found (reported, not guessed).
 */
export function lifecycles(procs, benchPid, containerdPid, factoryPid = 0) {
  const all = [...procs.values()];
  const isUnder = (p, anc) => {
    for (let q = p; q; q = procs.get(q.parent)) if (q.pid === anc) return true;
    return false;
  };
  const ctrs = all.filter((p) => p.parent === benchPid && p.execs.some((x) => base(x.file) === "ctr")).sort((a, b) => a.execs[0].t - b.execs[0].t);
  const out = [];
  for (const ctr of ctrs) {
    const t0 = ctr.execs[0].t;
    const t1 = ctr.exit;
    if (t1 == null) continue;
    const inWin = (p) => p.execs.length && p.execs[0].t >= t0 && p.execs[0].t <= t1;
    const shims = all.filter((p) => p.parent === containerdPid && inWin(p) && base(p.execs[0].file).startsWith("containerd-shim")).sort((a, b) => a.execs[0].t - b.execs[0].t);
    if (shims.length < 2) {
      out.push(null);
      continue;
    }
    const [start, del] = [shims[0], shims[shims.length - 1]];
    // A parked daemon (factoryPid) was exec'd long before and is the factory's child, as the pooled
    // agents are: it is the one that exits after this start and runs no runc, the agent being the one that does.
    const fromFactory = (p) => p.parent === factoryPid && p.exit != null && p.exit > start.exit && p.exit < t1 + 2000;
    const daemon = factoryPid
      ? all.find((p) => fromFactory(p) && !all.some((q) => q !== p && isUnder(q, p.pid) && inWin(q) && q.execs.some((x) => base(x.file) === "runc")))
      : all.find((p) => p.parent === start.pid && p.execs.length);
    const agent = factoryPid ? all.find((p) => fromFactory(p) && p !== daemon) : daemon;
    if (!daemon) {
      out.push(null);
      continue;
    }
    if (!agent) {
      out.push(null);
      continue;
    }
    const runcs = all
      .filter((p) => inWin(p) && isUnder(p, agent.pid) && p.execs.some((x) => base(x.file) === "runc") && !base(procs.get(p.parent)?.execs.at(-1)?.file).startsWith("runc"))
      .sort((a, b) => a.execs[0].t - b.execs[0].t);
    const container = all.find((p) => inWin(p) && isUnder(p, agent.pid) && p.execs.some((x) => base(x.file) === "busybox" || /\/bin\/(true|busybox)$/.test(x.file)));
    if (runcs.length < 3 || !container || container.exit == null) {
      out.push(null);
      continue;
    }
    const [create, startRunc, deleteRunc] = [runcs[0], runcs[1], runcs[runcs.length - 1]];
    const startedAt = Math.max(startRunc.exit, create.exit);
    const ph = {
      ctr_to_start: start.execs[0].t - t0,
      start: start.exit - start.execs[0].t,
      create: create.exit - start.exit,
      start_task: startedAt - create.exit,
      exit: deleteRunc.execs[0].t - Math.max(container.exit, startedAt),
      delete_task: daemon.exit - deleteRunc.execs[0].t,
      delete: del.exit - daemon.exit,
      tail: t1 - del.exit,
    };
    // the container's own run time, not a shim phase
    ph.container = Math.max(0, container.exit - startedAt);
    ph.total = t1 - t0;
    // a parked daemon's life began long before this lifecycle: from its start's exit here
    ph.daemon_lifetime = daemon.exit - (factoryPid ? start.exit : daemon.execs[0].t);
    ph.delete_subcommand = del.exit - del.execs[0].t;
    // what containerd waits for between the two: a daemon may outlive its connection (delete_task ends at its exit)
    ph.teardown = del.execs[0].t - deleteRunc.execs[0].t;
    ph.runc_calls = runcs.length;
    out.push(ph);
  }
  return out;
}
