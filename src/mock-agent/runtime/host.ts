// No isolation: container processes run directly on the host (where runc or
// root is missing). The agent says so in its log; the rootfs is only the
// working directory's base, not a chroot.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import type { CgroupStatsInit } from "../../gen/grpc";
import type { OciLinuxResources, OciProcess } from "../../oci/spec";
import { hasNative, native } from "../../native";
import { ptyStreams } from "./stdio";
import { notImplemented } from "../../errdefs";
import type { ContainerConfig, Runtime, RuntimeProcess } from "./types";

interface Entry {
  c: ContainerConfig;
  procs: Set<HostProcess>;
}

class HostProcess implements RuntimeProcess {
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly exit: Promise<number>;
  private readonly masterFd: number | null;

  constructor(
    readonly child: ChildProcess,
    readonly terminal: boolean,
    pty: { masterFd: number; stream: Readable & Writable } | null,
  ) {
    this.pid = child.pid!;
    this.masterFd = pty?.masterFd ?? null;
    this.stdin = pty ? pty.stream : child.stdin;
    this.stdout = pty ? pty.stream : child.stdout;
    this.stderr = pty ? null : child.stderr;
    this.stdin?.on("error", () => {});
    this.exit = new Promise((resolve) => {
      child.on("exit", (code, sig) => resolve(code ?? 128 + (sig ? os.constants.signals[sig] : 0)));
      child.on("error", () => resolve(127));
    });
  }

  resize(rows: number, cols: number): void {
    if (this.masterFd !== null) native().setWinsize(this.masterFd, rows, cols);
  }

  closeStdin(): void {
    if (this.terminal) this.stdin?.write(Buffer.from([0x04]));
    else this.stdin?.end();
  }
}

export class HostRuntime implements Runtime {
  readonly name = "host" as const;
  readonly isolated = false;
  private readonly containers = new Map<string, Entry>();

  async create(c: ContainerConfig): Promise<null> {
    this.containers.set(c.id, { c, procs: new Set() });
    return null;
  }

  private entry(id: string): Entry {
    const e = this.containers.get(id);
    if (!e) throw new Error(`container ${id} not found in host runtime`);
    return e;
  }

  async start(id: string): Promise<RuntimeProcess> {
    const e = this.entry(id);
    if (!e.c.spec.process) throw new Error(`container ${id} has no process`);
    return this.launch(e, e.c.spec.process);
  }

  async exec(id: string, _execId: string, proc: OciProcess): Promise<RuntimeProcess> {
    return this.launch(this.entry(id), proc);
  }

  private launch(e: Entry, proc: OciProcess): HostProcess {
    const args = proc.args ?? [];
    if (!args.length) throw new Error("process has no args");
    const env: Record<string, string> = {};
    for (const kv of proc.env ?? []) {
      const i = kv.indexOf("=");
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    const root = e.c.spec.root?.path ?? "/";
    const inRoot = path.join(root, proc.cwd || "/");
    const cwd = fs.existsSync(inRoot) ? inRoot : fs.existsSync(proc.cwd) ? proc.cwd : "/";
    const asRoot = process.getuid?.() === 0;
    const ids = asRoot ? { uid: proc.user?.uid ?? 0, gid: proc.user?.gid ?? 0 } : {};
    if (proc.terminal) {
      if (!hasNative()) throw new Error("a terminal needs shimlab's native addon (npm run build:native)");
      const pty = native().openpty();
      if (proc.consoleSize) native().setWinsize(pty.master, proc.consoleSize.height, proc.consoleSize.width);
      const child = spawn(args[0], args.slice(1), { cwd, env, stdio: [pty.slave, pty.slave, pty.slave], detached: true, ...ids });
      fs.closeSync(pty.slave);
      const s = ptyStreams(pty.master);
      const p = new HostProcess(child, true, { masterFd: pty.master, stream: s.stream as unknown as Readable & Writable });
      this.track(e, p);
      return p;
    }
    const child = spawn(args[0], args.slice(1), { cwd, env, stdio: ["pipe", "pipe", "pipe"], detached: true, ...ids });
    const p = new HostProcess(child, false, null);
    this.track(e, p);
    return p;
  }

  private track(e: Entry, p: HostProcess): void {
    e.procs.add(p);
    p.exit.then(() => e.procs.delete(p));
  }

  async signal(id: string, target: RuntimeProcess | "all", sig: number): Promise<void> {
    const e = this.entry(id);
    const targets = target === "all" ? [...e.procs] : [target];
    for (const t of targets) {
      // each process leads its own group: signal the group, children included
      for (const pid of [-t.pid, t.pid]) {
        try {
          process.kill(pid, sig);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
        }
      }
    }
  }

  async pause(id: string): Promise<void> {
    await this.signal(id, "all", os.constants.signals.SIGSTOP);
  }

  async resume(id: string): Promise<void> {
    await this.signal(id, "all", os.constants.signals.SIGCONT);
  }

  async stats(id: string): Promise<CgroupStatsInit> {
    const e = this.entry(id);
    let user = 0;
    let sys = 0;
    let rss = 0;
    const hz = 100;
    for (const p of e.procs) {
      try {
        const stat = fs.readFileSync(`/proc/${p.pid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        user += Number(f[11]);
        sys += Number(f[12]);
        rss += Number(f[21]) * 4096;
      } catch {
        /* exited */
      }
    }
    const ns = (ticks: number) => Math.round((ticks / hz) * 1e9);
    return {
      cpuStats: { cpuUsage: { totalUsage: ns(user + sys), usageInUsermode: ns(user), usageInKernelmode: ns(sys) } },
      memoryStats: { usage: { usage: rss, maxUsage: rss }, stats: { rss } },
      pidsStats: { current: e.procs.size },
    };
  }

  async update(_id: string, _r: OciLinuxResources): Promise<void> {
    throw notImplemented("resource updates need the runc runtime: the host runtime has no cgroup to apply them to");
  }

  oomKills(): number {
    return 0;
  }

  async pids(id: string): Promise<number[]> {
    return [...this.entry(id).procs].map((p) => p.pid);
  }

  removeCgroup(): void {
    // the host runtime makes no cgroups
  }

  async destroy(id: string): Promise<void> {
    const e = this.containers.get(id);
    if (!e) return;
    await this.signal(id, "all", os.constants.signals.SIGKILL);
    await Promise.all([...e.procs].map((p) => p.exit));
    this.containers.delete(id);
  }
}
