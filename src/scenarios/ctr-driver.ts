// The containerd driver: the same scenario steps, but through a private real
// containerd (Debian's 1.6) and `ctr`, with `ctr events` as the event record.
// Killing containerd here is real: it goes down with its shims running and
// comes back on the same state directory, as in containerd#6771.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { Containerd } from "../harness/containerd";
import { Code, RpcError } from "../ttrpc/status";
import { FP_RUNTIME_TYPE } from "../fp-shim/binary";
import type { World } from "./world";
import type { OpStep, Scenario } from "./types";

export const RUNTIME = "io.containerd.shimlab.v2";

/** The ops this driver can do with ctr (the rest need the emulator's direct Task connection). */
export const CTR_OPS = new Set(["start", "exec", "kill", "wait", "state", "delete", "pause", "resume", "sleep", "await-event", "kill-process", "pause-process", "resume-process", "containerd-down", "containerd-up", "inject", "heal"]);

const CAMEL: Record<string, string> = { container_id: "containerId", exec_id: "execId", exit_status: "exitStatus", exited_at: "exitedAt" };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class CtrDriver {
  readonly containerd: Containerd;
  private watcher: ChildProcess | null = null;
  private buf = "";

  constructor(
    readonly s: Scenario,
    readonly w: World,
    env: NodeJS.ProcessEnv,
  ) {
    this.containerd = new Containerd({ dir: path.join(w.dir, "ctd"), env });
    w.hooks = { down: () => this.down(), up: () => this.up() };
  }

  async start(): Promise<void> {
    await this.containerd.start();
    await this.watch();
  }

  /** `ctr events`, lines parsed into the world's event record (snake_case fields as the emulator names them). */
  private async watch(): Promise<void> {
    const c = this.containerd;
    const child = spawn("ctr", ["--address", c.address, "events"], { env: c.env(), stdio: ["ignore", "pipe", "ignore"] });
    this.watcher = child;
    child.stdout!.on("data", (d) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const m = /\s(\S+)\s+(\/tasks\/[a-z-]+)\s+(\{.*\})\s*$/.exec(line);
        if (!m || m[1] !== this.w.namespace) continue;
        const raw = JSON.parse(m[3]) as Record<string, unknown>;
        const event = Object.fromEntries(Object.entries(raw).map(([k, v]) => [CAMEL[k] ?? k, v]));
        this.w.events.push({ seq: this.w.events.length, topic: m[2], namespace: m[1], typeUrl: "", event, timestamp: Date.now(), receivedAt: performance.now(), time: this.w.now() });
      }
    });
    await sleep(300); // let ctr subscribe before anything happens
  }

  private stopWatch(): void {
    this.watcher?.kill();
    this.watcher = null;
  }

  private async down(): Promise<void> {
    this.stopWatch();
    await this.containerd.kill();
  }

  private async up(): Promise<void> {
    await this.containerd.start();
    await this.watch();
  }

  private async ctr(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
    if (this.w.down) throw new RpcError(Code.Unavailable, "containerd is down");
    const r = await this.containerd.ctr(args, { namespace: this.w.namespace, timeoutMs }).catch((e: Error) => {
      throw new RpcError(Code.DeadlineExceeded, `ctr ${args[0]} ${args[1]}: context deadline exceeded (${e.message})`);
    });
    return { code: r.code, out: (r.out + r.err).trim() };
  }

  private async must(args: string[], timeoutMs: number): Promise<string> {
    const r = await this.ctr(args, timeoutMs);
    if (r.code !== 0) throw new RpcError(errorCode(r.out), `ctr ${args.slice(0, 2).join(" ")}: ${r.out.split("\n").pop()}`);
    return r.out;
  }

  private async status(id: string, timeoutMs: number): Promise<string> {
    const out = await this.must(["task", "ls"], timeoutMs);
    const m = new RegExp(`^${id}\\s+\\d+\\s+(\\w+)`, "m").exec(out);
    if (!m) throw new RpcError(Code.NotFound, `no task ${id}`);
    return m[1];
  }

  async perform(st: OpStep, timeoutMs: number): Promise<unknown> {
    const id = st.container!;
    switch (st.do) {
      case "start": {
        // ctr has no separate Task.Create: `run -d` is container create, Task.Create and Task.Start.
        const def = this.s.containers[id];
        const ann = { ...def.annotations, ...(id === this.w.sandboxId ? this.w.faultLaunch().annotations : {}) };
        // containerd finds the failpoint shim's binary (containerd-shim-shimlab-fp-v2) by this name on its PATH, beside shimlab's.
        const runtime = this.w.fpShim ? FP_RUNTIME_TYPE : RUNTIME;
        const flags = ["-d", "--null-io", "--runtime", runtime, ...Object.entries(ann).flatMap(([k, v]) => ["--annotation", `${k}=${v}`])];
        if (def.memory_limit) flags.push("--memory-limit", String(def.memory_limit));
        await this.must(["run", ...flags, "--rootfs", this.w.rootfs, id, ...def.args], timeoutMs);
        return {};
      }
      case "exec":
        await this.must(["task", "exec", "-d", "--exec-id", st.exec_id!, id, ...st.args!], timeoutMs);
        return {};
      case "kill":
        await this.must(["task", "kill", "-s", String(st.signal ?? 15), ...(st.all ? ["--all"] : []), ...(st.exec_id ? ["--exec-id", st.exec_id] : []), id], timeoutMs);
        return {};
      case "wait": {
        const proc = st.exec_id ?? id;
        const e = await this.w.waitEvent((e) => e.topic === "/tasks/exit" && e.event.containerId === id && (e.event.id ?? id) === proc, timeoutMs);
        if (!e) throw new RpcError(Code.DeadlineExceeded, `wait ${proc}: context deadline exceeded`);
        return { exitStatus: e.event.exitStatus ?? 0 };
      }
      case "state":
        return { status: await this.status(id, timeoutMs) };
      case "delete": {
        // ctr 1.6 prints no exit status here: the events carry it.
        await this.must(["task", "delete", ...(st.exec_id ? ["--exec-id", st.exec_id] : []), id], timeoutMs);
        if (!st.exec_id) await this.must(["container", "rm", id], timeoutMs);
        return {};
      }
      case "pause":
      case "resume":
        await this.must(["task", st.do, id], timeoutMs);
        return {};
    }
    return undefined;
  }

  /** containerd's own way out: kill, delete, remove; then containerd stops. */
  async teardown(): Promise<void> {
    for (const id of Object.keys(this.s.containers).reverse()) {
      await this.ctr(["task", "kill", "-s", "9", "--all", id], 5_000).catch(() => {});
      for (let i = 0; i < 30; i++) {
        const st = await this.status(id, 5_000).catch(() => "gone");
        if (st !== "RUNNING" && st !== "PAUSED" && st !== "CREATED") break;
        await sleep(100);
      }
      await this.ctr(["task", "delete", "-f", id], 10_000).catch(() => {});
      await this.ctr(["container", "rm", id], 10_000).catch(() => {});
    }
    this.stopWatch();
    await this.containerd.stop();
  }

  async destroy(): Promise<void> {
    this.stopWatch();
    await this.containerd.destroy().catch(() => {});
  }
}

function errorCode(msg: string): Code {
  if (/not found/i.test(msg)) return Code.NotFound;
  if (/already exists/i.test(msg)) return Code.AlreadyExists;
  if (/failed precondition|cannot delete a running|is not stopped/i.test(msg)) return Code.FailedPrecondition;
  if (/deadline exceeded/i.test(msg)) return Code.DeadlineExceeded;
  if (/unavailable|connection refused|ttrpc: closed/i.test(msg)) return Code.Unavailable;
  return Code.Unknown;
}
