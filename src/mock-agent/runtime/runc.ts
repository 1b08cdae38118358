// Containers for real: runc create/start/exec with the agent as subreaper.
import fs from "node:fs";
import { readCgroupStats } from "./cgroup-stats";
import { removeCgroupDirs } from "../../util/cgroup";
export { removeCgroupDirs };
import path from "node:path";
import { PassThrough, type Readable, type Writable } from "node:stream";
import type { CgroupStatsInit } from "../../gen/grpc";
import type { OciLinuxResources, OciProcess, OciSpec } from "../../oci/spec";
import type { Reaper } from "../reaper";
import { mustRun, run, spawnReaped } from "./exec";
import { native } from "../../native";
import { consoleSocket, makePipes, pipeReader, ptyStreams } from "./stdio";
import type { ContainerConfig, Runtime, RuntimeProcess } from "./types";

interface Entry {
  dir: string;
  cgroupsPath: string;
  init: RuntimeProcess | null;
  execSeq: number;
}

/**
 * runc, or crun through the same command line (create, start, exec --detach, kill --all, ps,
 * update --resources, delete --force, --log-format json): crun has no `events`, and stats() then
 * reads the cgroup itself, as it does for an exited container.
 */
export class RuncRuntime implements Runtime {
  readonly isolated = true;
  private readonly containers = new Map<string, Entry>();

  constructor(
    private readonly reaper: Reaper,
    private readonly root: string,
    private readonly binary = "runc",
    /** The root is an initramfs (a VM guest): pivot_root(2) refuses ramfs, so runc must chroot instead. */
    private readonly noPivot = false,
    readonly name: "runc" | "crun" = "runc",
  ) {
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  }

  private runc(args: string[]) {
    return mustRun(this.reaper, this.binary, ["--root", this.root, ...args]);
  }

  private entry(id: string): Entry {
    const e = this.containers.get(id);
    if (!e) throw new Error(`container ${id} not found in runc runtime`);
    return e;
  }

  async create(c: ContainerConfig): Promise<RuntimeProcess> {
    fs.mkdirSync(c.dir, { recursive: true, mode: 0o700 });
    const spec: OciSpec = JSON.parse(JSON.stringify(c.spec));
    spec.linux = spec.linux ?? {};
    const cgroupsPath = c.cgroupsPath ?? spec.linux.cgroupsPath ?? `/shimlab/${c.id}`;
    spec.linux.cgroupsPath = cgroupsPath;
    const ns = (spec.linux.namespaces ?? []).filter((n) => !(c.join && (c.join as Record<string, string | undefined>)[n.type]));
    for (const [type, p] of Object.entries(c.join ?? {})) if (p) ns.push({ type, path: p });
    spec.linux.namespaces = ns;
    // Debian 12's crun (1.8) refuses a spec whose ociVersion does not contain "1.0" ("unknown version
    // specified"), and containerd 2.x writes 1.2.x: said as 1.1.0 it is taken, fields it does not
    // know ignored, as they would be anyway.
    if (this.name === "crun" && spec.ociVersion && !spec.ociVersion.includes("1.0")) spec.ociVersion = "1.1.0";
    fs.writeFileSync(path.join(c.dir, "config.json"), JSON.stringify(spec));
    const pidFile = path.join(c.dir, "init.pid");
    const terminal = !!spec.process?.terminal;
    const proc = await this.launch(["create", ...(this.noPivot ? ["--no-pivot"] : []), "--bundle", c.dir, "--pid-file", pidFile], c.id, pidFile, terminal, c.dir);
    this.containers.set(c.id, { dir: c.dir, cgroupsPath, init: proc, execSeq: 0 });
    return proc;
  }

  async start(id: string): Promise<null> {
    await this.runc(["start", id]);
    return null;
  }

  async exec(id: string, _execId: string, proc: OciProcess): Promise<RuntimeProcess> {
    const e = this.entry(id);
    const n = ++e.execSeq;
    const procFile = path.join(e.dir, `exec-${n}.json`);
    const pidFile = path.join(e.dir, `exec-${n}.pid`);
    fs.writeFileSync(procFile, JSON.stringify(proc));
    try {
      return await this.launch(["exec", "--detach", "--pid-file", pidFile, "--process", procFile], id, pidFile, !!proc.terminal, e.dir);
    } finally {
      fs.rmSync(procFile, { force: true });
    }
  }

  /** runc create or exec, with pipes or a console socket, ending with the process re-parented to us. */
  private async launch(args: string[], id: string, pidFile: string, terminal: boolean, dir: string): Promise<RuntimeProcess> {
    const logFile = path.join(dir, "runc.log");
    const head = ["--root", this.root, "--log", logFile, "--log-format", "json"];
    let stdin: Writable | null = null;
    let stdout: Readable | null = null;
    let stderr: Readable | null = null;
    let resize: (rows: number, cols: number) => void = () => {};
    let fds: number[];
    let pipes: ReturnType<typeof makePipes> | null = null;
    let console: ReturnType<typeof consoleSocket> | null = null;
    // With a terminal, runc's stderr is a pipe of its own (the process has the pty).
    let runcErr: { read: number; write: number } | null = null;
    if (terminal) {
      console = consoleSocket();
      args = [...args.slice(0, 1), "--console-socket", console.path, ...args.slice(1)];
      if (args[0] === "exec") args.splice(1, 0, "--tty");
      runcErr = native().pipe();
      fds = [-1, -1, runcErr.write];
    } else {
      pipes = makePipes();
      fds = pipes.child;
    }
    let child: { pid: number; exit: Promise<number> };
    try {
      child = spawnReaped(this.reaper, this.binary, [...head, ...args, id], fds);
    } catch (e) {
      console?.close();
      pipes?.stdin.destroy();
      pipes?.stdout.destroy();
      pipes?.stderr.destroy();
      if (runcErr) fs.closeSync(runcErr.read);
      throw e;
    } finally {
      pipes?.closeChildEnds();
      if (runcErr) fs.closeSync(runcErr.write);
    }
    // What arrives on the stderr runc shares with the process before runc exits
    // is runc's complaint if it fails. If it succeeds it may be the process's
    // own output — `runc exec --detach` returns after the process has started
    // and maybe written — and it goes back to the stream for the shim to read.
    const early: Buffer[] = [];
    const errStream = runcErr ? pipeReader(runcErr.read) : pipes!.stderr;
    const onEarly = (d: Buffer) => early.push(d);
    let errEnded = false;
    const onEnd = () => (errEnded = true);
    errStream.on("data", onEarly);
    errStream.once("end", onEnd);
    // runc's own stderr pipe is read to its end, all of runc's complaint with it.
    const code = runcErr ? (await Promise.all([child.exit, new Promise((r) => errStream.once("close", r))]))[0] : await child.exit;
    if (runcErr) errStream.destroy();
    errStream.removeListener("data", onEarly);
    errStream.removeListener("end", onEnd);
    let processErr: Readable | null = pipes?.stderr ?? null;
    if (!terminal) {
      errStream.pause();
      if (code === 0 && (early.length || errEnded)) {
        // The process's stderr, starting with what we read meanwhile.
        const rest = new PassThrough();
        for (const b of early) rest.write(b);
        if (errEnded) rest.end();
        else errStream.pipe(rest);
        processErr = rest;
      }
    }
    if (code !== 0) {
      console?.close();
      pipes?.stdin.destroy();
      pipes?.stdout.destroy();
      pipes?.stderr.destroy();
      throw new Error(`runc ${args[0]} ${id} failed (exit ${code}): ${(Buffer.concat(early).toString().trim() || lastRuncError(logFile)).slice(0, 2000)}`);
    }
    const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
    if (terminal) {
      const master = await console!.master;
      const pty = ptyStreams(master);
      stdin = pty.stream;
      stdout = pty.stream;
      resize = pty.resize;
    } else {
      stdin = pipes!.stdin;
      stdout = pipes!.stdout;
      stderr = processErr;
    }
    const exit = new Promise<number>((resolve) => this.reaper.watch(pid, resolve));
    return {
      pid,
      stdin,
      stdout,
      stderr,
      terminal,
      resize: (r, c) => resize(r, c),
      closeStdin: () => {
        if (terminal) {
          // EOF on a tty is the VEOF character, not a close (the pty would hang up).
          stdin?.write(Buffer.from([0x04]));
        } else stdin?.end();
      },
      exit,
    };
  }

  async signal(id: string, target: RuntimeProcess | "all", sig: number): Promise<void> {
    if (target === "all") {
      const r = await run(this.reaper, this.binary, ["--root", this.root, "kill", "--all", id, String(sig)]);
      if (r.code !== 0 && !/not running|no such process|container not running/i.test(r.stderr)) {
        throw new Error(`runc kill --all ${id}: ${r.stderr.trim()}`);
      }
      return;
    }
    try {
      process.kill(target.pid, sig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
  }

  async pause(id: string): Promise<void> {
    await this.runc(["pause", id]);
  }

  async resume(id: string): Promise<void> {
    await this.runc(["resume", id]);
  }

  async stats(id: string): Promise<CgroupStatsInit> {
    const fromCgroup = () => {
      const c = this.containers.get(id);
      return c ? readCgroupStats(c.cgroupsPath) : null;
    };
    if (this.name === "crun") {
      // crun has no `events`: the cgroup is what there is to read.
      const d = fromCgroup();
      if (!d) throw new Error(`container ${id} has no cgroup to read stats from`);
      return statsFromRunc(d);
    }
    try {
      const out = await this.runc(["events", "--stats", id]);
      return statsFromRunc(JSON.parse(out).data ?? {});
    } catch (e) {
      // Exited, not yet deleted: runc refuses, the cgroup is still there (cgroup-stats.ts).
      const d = fromCgroup();
      if (!d) throw e;
      return statsFromRunc(d);
    }
  }

  async update(id: string, r: OciLinuxResources): Promise<void> {
    const e = this.entry(id);
    const f = path.join(e.dir, "update.json");
    fs.writeFileSync(f, JSON.stringify(r));
    try {
      await this.runc(["update", "--resources", f, id]);
    } finally {
      fs.rmSync(f, { force: true });
    }
  }

  oomKills(id: string): number {
    const e = this.containers.get(id);
    if (!e) return 0;
    const rel = e.cgroupsPath.replace(/^\/+/, "");
    for (const f of [`/sys/fs/cgroup/memory/${rel}/memory.oom_control`, `/sys/fs/cgroup/${rel}/memory.events`]) {
      try {
        const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync(f, "utf8"));
        if (m) return Number(m[1]);
      } catch {
        /* not this cgroup version */
      }
    }
    return 0;
  }

  async pids(id: string): Promise<number[]> {
    const out = await this.runc(["ps", "--format", "json", id]);
    return JSON.parse(out) ?? [];
  }

  removeCgroup(cgroupPath: string): void {
    removeCgroupDirs(cgroupPath);
  }

  async destroy(id: string): Promise<void> {
    const e = this.containers.get(id);
    const r = await run(this.reaper, this.binary, ["--root", this.root, "delete", "--force", id]);
    if (r.code !== 0 && !/does not exist|not found/i.test(r.stderr)) throw new Error(`runc delete ${id}: ${r.stderr.trim()}`);
    this.containers.delete(id);
    if (e) fs.rmSync(e.dir, { recursive: true, force: true });
  }
}

/** rmdir of a cgroup in every hierarchy (v1 controllers, or the v2 unified tree); empty ones only. */
function lastRuncError(logFile: string): string {
  try {
    const lines = fs.readFileSync(logFile, "utf8").trim().split("\n").reverse();
    for (const l of lines) {
      try {
        const j = JSON.parse(l);
        if (j.level === "error" || j.level === "fatal") return j.msg;
      } catch {
        /* not json */
      }
    }
  } catch {
    /* no log */
  }
  return "unknown error";
}

/** runc's `events --stats` JSON as kata's CgroupStats. */
export function statsFromRunc(d: Record<string, any>): CgroupStatsInit {
  const mem = d.memory ?? {};
  const entry = (x: any) => (x ? { usage: x.usage ?? 0, maxUsage: x.max ?? 0, failcnt: x.failcnt ?? 0, limit: x.limit ?? 0 } : undefined);
  const blk = d.blkio ?? {};
  const blkList = (l: any[] | undefined) => (l ?? []).map((e) => ({ major: e.major ?? 0, minor: e.minor ?? 0, op: e.op ?? "", value: e.value ?? 0 }));
  const hugetlb: Record<string, { usage: number; maxUsage: number; failcnt: number }> = {};
  for (const [k, v] of Object.entries<any>(d.hugetlb ?? {})) hugetlb[k] = { usage: v.usage ?? 0, maxUsage: v.max ?? 0, failcnt: v.failcnt ?? 0 };
  return {
    cpuStats: {
      cpuUsage: {
        totalUsage: d.cpu?.usage?.total ?? 0,
        percpuUsage: d.cpu?.usage?.percpu ?? [],
        usageInKernelmode: d.cpu?.usage?.kernel ?? 0,
        usageInUsermode: d.cpu?.usage?.user ?? 0,
      },
      throttlingData: {
        periods: d.cpu?.throttling?.periods ?? 0,
        throttledPeriods: d.cpu?.throttling?.throttledPeriods ?? 0,
        throttledTime: d.cpu?.throttling?.throttledTime ?? 0,
      },
    },
    memoryStats: {
      cache: mem.cache ?? mem.raw?.cache ?? 0,
      usage: entry(mem.usage),
      swapUsage: entry(mem.swap),
      kernelUsage: entry(mem.kernel),
      useHierarchy: true,
      stats: Object.fromEntries(Object.entries<any>(mem.raw ?? {}).filter(([, v]) => typeof v === "number")),
    },
    pidsStats: { current: d.pids?.current ?? 0, limit: d.pids?.limit ?? 0 },
    blkioStats: {
      ioServiceBytesRecursive: blkList(blk.ioServiceBytesRecursive),
      ioServicedRecursive: blkList(blk.ioServicedRecursive),
      ioQueuedRecursive: blkList(blk.ioQueueRecursive),
      ioServiceTimeRecursive: blkList(blk.ioServiceTimeRecursive),
      ioWaitTimeRecursive: blkList(blk.ioWaitTimeRecursive),
      ioMergedRecursive: blkList(blk.ioMergedRecursive),
      ioTimeRecursive: blkList(blk.ioTimeRecursive),
      sectorsRecursive: blkList(blk.sectorsRecursive),
    },
    hugetlbStats: hugetlb,
  };
}
