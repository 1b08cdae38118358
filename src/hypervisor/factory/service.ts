// `shimlab factory`: warm sandboxes, as Kata's VM factory (VMCache) keeps
// booted VMs for new sandboxes. A small pool of booted host agents or QEMU
// VMs (warmer.ts, qemu/warm.ts), each waiting for a sandbox; a shim takes one
// over the factory's socket instead of booting its own, and the pool is
// refilled behind it.
//
// Rules: an agent serves one sandbox and is never given twice (it leaves the
// pool before it is handed out); one found dead or built from an older mock
// agent than the one installed is replaced, not handed out; and a handed-out
// agent no longer depends on the factory: it is told to live as long as its
// shim (the mock agent's lifeline, "ADOPT"; a VM's keeper speaks the same),
// runs in a session of its own,
// and its directory and record become the shim's. A factory that dies leaves
// its pooled agents to see EOF on their lifelines and exit; the next factory
// on the same directory removes what they left (pool/<id>.json).
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import crypto from "node:crypto";
import os from "node:os";
import type { ChildProcess } from "node:child_process";
import type { Duplex } from "node:stream";
import { killRecorded, processStartTime } from "../rundir";
import { hostAgentWarmer, type WarmBoot, type Warmer } from "./warmer";
import { listProcesses, processAlive, setProcessPriority } from "../../util/proc";
import { cgroupParent, lowCpuCgroup, type CpuCgroup } from "../../util/cgroup";
import { TakerCgroups } from "./takers";
import type { Logger } from "../../util/logger";
import { PARKED_HOLD_MS, type FactoryRequest, type FactoryResponse, type FactoryStatus, type WarmAgent } from "./protocol";
import { DaemonPool, type DaemonPoolOptions } from "./daemon-pool";

export interface FactoryOptions {
  /** The factory's own directory: the pool's agents and their records, its pid file. */
  dir: string;
  socket: string;
  /** How many warm agents it keeps. */
  size: number;
  agentRuntime: "auto" | "runc" | "host";
  debug?: boolean;
  logger: Logger;
  /** The agents' environment (default: the factory's). */
  env?: NodeJS.ProcessEnv;
  /** What the pool holds (default: host agents, with agentRuntime, debug and env). */
  warmer?: Warmer;
  /** Parked shim daemons too (daemon-pool.ts): the shim's node and bundle launcher, and how many. */
  daemons?: Pick<DaemonPoolOptions, "node" | "script" | "size">;
}

interface Warm {
  id: string;
  dir: string;
  child: ChildProcess;
  pid: number;
  startTime: string;
  boot: WarmBoot;
  ready: boolean;
  bootedAt: number;
}

/** Waiting this long for an agent's "ADOPTED" means it is wedged: replaced, not handed out. */
const ADOPT_TIMEOUT_MS = 2000;
/** After a boot that failed, the next one waits this long (an agent that cannot start must not spin). */
const BOOT_BACKOFF_MS = 1000;
/** How long after a take the pool starts refilling. */
const REFILL_DELAY_MS = 150;

/** The pool's agents boot at this niceness. */
const POOL_NICE = 10;

export class Factory {
  private readonly pool: Warm[] = [];
  private server: net.Server | null = null;
  private stopping = false;
  private failures = 0;
  private refillTimer: NodeJS.Timeout | null = null;
  private refillSoonTimer: NodeJS.Timeout | null = null;
  private readonly stats = { handedOut: 0, held: 0, misses: 0, replaced: 0 };
  /** Parked daemons' takes waiting for an agent to get ready. */
  private readonly readyWaiters = new Set<() => void>();
  /** Open connections: a stopping factory hangs up on them rather than wait for their callers. */
  private readonly conns = new Set<net.Socket>();

  /** Boots that have not spawned their process yet: a pool slot each. */
  private spawning = 0;
  private readonly warmer: Warmer;
  /** Where the pool boots, below the factory's own CPU cgroup: see lowCpuCgroup. */
  private background: CpuCgroup | null = null;
  /**
   * The last taker's cgroups (a shim's: containerd's, as a rule), which a ready host agent waits
   * in (takers.ts). Not a VM: an idle guest under TCG still spins, and stays in the pool's low
   * CPU share until taken.
   */
  private readonly takers = new TakerCgroups();

  /** Made once the warmer is ready (a QEMU warmer knows its kind of VM only then). */
  private daemons: DaemonPool | null = null;

  constructor(private readonly o: FactoryOptions) {
    this.warmer = o.warmer ?? hostAgentWarmer({ agentRuntime: o.agentRuntime, debug: o.debug, env: o.env ?? process.env, cgroupParent: cgroupParent(o.env ?? process.env) });
  }

  private get filling(): number {
    return this.pool.length + this.spawning;
  }

  private get poolDir(): string {
    return path.join(this.o.dir, "pool");
  }

  async start(): Promise<void> {
    await this.warmer.init?.();
    const o = this.o;
    this.daemons =
      o.daemons && o.daemons.size > 0
        ? new DaemonPool(
            {
              ...o.daemons,
              dir: path.join(o.dir, "daemons"),
              factorySocket: o.socket,
              env: o.env ?? process.env,
              logger: o.logger,
              // a host-agent pool's parked daemons each hold an agent (held.ts); a VM is no daemon's to hold
              ...(this.warmer.describe().kind === "none" && o.size > 0 ? { holdAgents: this.warmer.describe().agentRuntime, agentStale: (since: number) => this.warmer.stale(since) } : {}),
            },
            () => this.background,
          )
        : null;
    // A fixed name: a factory that died leaves the directory to the next, not one per pid.
    this.background = lowCpuCgroup("shimlab-factory-pool");
    fs.mkdirSync(this.poolDir, { recursive: true, mode: 0o700 });
    this.reapLeftovers();
    fs.mkdirSync(path.dirname(this.o.socket), { recursive: true, mode: 0o700 });
    await this.claimSocket();
    const server = net.createServer((c) => this.serve(c));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.o.socket, () => {
        server.removeListener("error", reject);
        resolve();
      });
    });
    fs.chmodSync(this.o.socket, 0o600);
    fs.writeFileSync(path.join(this.o.dir, "factory.pid"), `${process.pid} ${processStartTime(process.pid) ?? ""}\n`);
    this.o.logger.info("factory serving", { socket: this.o.socket, size: this.o.size, daemons: this.o.daemons?.size ?? 0, ...this.warmer.describe() });
    this.refill();
    this.daemons?.start();
  }

  /** A socket file nobody answers on is a dead factory's: removed. A live one is refused. */
  private async claimSocket(): Promise<void> {
    if (!fs.existsSync(this.o.socket)) return;
    const live = await new Promise<boolean>((resolve) => {
      const c = net.createConnection({ path: this.o.socket });
      c.once("connect", () => (c.destroy(), resolve(true)));
      c.once("error", () => resolve(false));
    });
    if (live) throw new Error(`a factory already serves ${this.o.socket}`);
    fs.rmSync(this.o.socket, { force: true });
  }

  /** What a factory that died on this directory left: pooled agents (still on their lifeline, or not) and their directories. */
  private reapLeftovers(): void {
    for (const f of fs.readdirSync(this.poolDir)) {
      if (!f.endsWith(".json")) continue;
      const file = path.join(this.poolDir, f);
      try {
        const rec = JSON.parse(fs.readFileSync(file, "utf8")) as { pid: number; startTime: string; dir: string };
        killRecorded(rec.pid, rec.startTime);
        if (rec.dir && rec.dir.startsWith(this.poolDir + path.sep)) fs.rmSync(rec.dir, { recursive: true, force: true });
        this.o.logger.info("removed a warm agent a previous factory left", { pid: rec.pid, dir: rec.dir });
      } catch (e) {
        this.o.logger.warn("unreadable pool record", { file, error: (e as Error).message });
      }
      fs.rmSync(file, { force: true });
    }
    // An agent handed out as its factory died (adopted, the answer never sent) has no record: its
    // directory goes once no process names it (it exits unclaimed, or with the shim that adopted it).
    const named = listProcesses();
    for (const d of fs.readdirSync(this.poolDir, { withFileTypes: true })) {
      const dir = path.join(this.poolDir, d.name);
      if (d.isDirectory() && !named.some((p) => p.cmdline.includes(dir + path.sep))) fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  status(): FactoryStatus {
    const warm = this.pool.filter((w) => w.ready);
    return {
      pid: process.pid,
      ...this.warmer.describe(),
      size: this.o.size,
      ready: warm.length,
      warm: warm.map((w) => w.boot.handout().vm?.pid ?? w.pid),
      booting: this.filling - warm.length,
      ...this.stats,
      ...(this.daemons ? { daemons: this.daemons.status() } : {}),
    };
  }

  private serve(c: net.Socket): void {
    let text = "";
    this.conns.add(c);
    c.on("close", () => this.conns.delete(c));
    c.on("error", () => {});
    c.on("data", (d) => {
      text += d.toString("utf8");
      const nl = text.indexOf("\n");
      if (nl < 0) {
        if (text.length > 4096) c.end(JSON.stringify({ ok: false, error: "request too long" }) + "\n");
        return;
      }
      c.removeAllListeners("data");
      let req: FactoryRequest;
      try {
        req = JSON.parse(text.slice(0, nl)) as FactoryRequest;
      } catch {
        c.end(JSON.stringify({ ok: false, error: "request is not JSON" }) + "\n");
        return;
      }
      this.answer(req).then(
        (r) => c.end(JSON.stringify(r) + "\n"),
        (e: Error) => c.end(JSON.stringify({ ok: false, error: e.message }) + "\n"),
      );
    });
  }

  private async answer(req: FactoryRequest): Promise<FactoryResponse> {
    if (req.op === "status") return { ok: true, status: this.status() };
    if (req.op === "daemon") {
      if (this.stopping) return { ok: false, error: "the factory is stopping" };
      if (!this.daemons) return { ok: false, error: "this factory parks no shim daemons" };
      const daemon = this.daemons.take(req.pid);
      return daemon ? { ok: true, daemon } : { ok: false, error: "no parked daemon is ready" };
    }
    if (req.op !== "take") return { ok: false, error: `unknown op ${JSON.stringify((req as { op: unknown }).op)}` };
    if (this.stopping) return { ok: false, error: "the factory is stopping" };
    const refused = this.warmer.refuse(req);
    if (refused) return { ok: false, error: refused };
    if (!Number.isInteger(req.pid) || typeof req.startTime !== "string" || !processAlive(req.pid, req.startTime)) return { ok: false, error: "the taker is not a live process" };
    // a parked daemon is in the pool's cgroups, not a pod's: nothing to learn from it
    if (!req.parked) this.learnTaker(req.pid);
    const agent = req.parked ? await this.handOutWhenReady(req.pid, req.startTime) : await this.handOut(req.pid, req.startTime);
    this.refillSoon();
    if (!agent) {
      if (!req.parked) this.stats.misses++;
      return { ok: false, error: "the pool is empty" };
    }
    if (req.parked) this.stats.held++;
    else this.stats.handedOut++;
    return { ok: true, agent };
  }

  /** For a parked daemon, which is on no pod's path: the next agent to get ready, or null (the factory stops, or none in PARKED_HOLD_MS). */
  private async handOutWhenReady(pid: number, startTime: string): Promise<WarmAgent | null> {
    const deadline = Date.now() + PARKED_HOLD_MS - 1_000;
    for (;;) {
      const a = await this.handOut(pid, startTime);
      if (a || this.stopping || Date.now() > deadline || !processAlive(pid, startTime)) return a;
      // what handOut found dead or stale it discarded: the pool refills while this waits
      this.refillSoon();
      let wake = (): void => {};
      const t = setTimeout(() => wake(), Math.max(0, deadline - Date.now()));
      await new Promise<void>((r) => {
        wake = r;
        this.readyWaiters.add(r);
      });
      clearTimeout(t);
      this.readyWaiters.delete(wake);
    }
  }

  private wakeWaiters(): void {
    for (const w of [...this.readyWaiters]) w();
  }

  /** The first ready agent that is alive, fresh and accepts its new holder; the others met on the way are replaced. */
  private async handOut(pid: number, startTime: string): Promise<WarmAgent | null> {
    for (;;) {
      const w = this.pool.find((x) => x.ready);
      if (!w) return null;
      // Out of the pool before anything else: no second taker can meet it.
      this.pool.splice(this.pool.indexOf(w), 1);
      const why = this.unfit(w) ?? (await this.adopt(w, pid, startTime));
      if (why) {
        this.o.logger.warn("warm agent replaced", { pid: w.pid, reason: why });
        this.stats.replaced++;
        this.discard(w);
        continue;
      }
      // Ours no more: its record (and so leftover reaping) and its exit are the shim's business now.
      fs.rmSync(this.recordOf(w), { force: true });
      w.child.removeAllListeners("exit");
      w.child.unref();
      const out = w.boot.handout();
      w.boot.release?.();
      this.o.logger.info("warm sandbox handed out", { pid: out.vm?.pid ?? w.pid, to: pid });
      return out;
    }
  }

  /** Why a warm sandbox must not be handed out: dead, or built from files changed since it booted. */
  private unfit(w: Warm): string | null {
    if (!processAlive(w.pid, w.startTime)) return "dead";
    const vm = w.boot.handout().vm;
    if (vm && !processAlive(vm.pid, vm.startTime)) return "its VM is dead";
    return this.warmer.stale(w.bootedAt);
  }

  /** Tells the agent its new holder; null once it said ADOPTED. */
  private adopt(w: Warm, pid: number, startTime: string): Promise<string | null> {
    const line = w.child.stdio[3] as Duplex | null;
    if (!line) return Promise.resolve("no lifeline");
    return new Promise((resolve) => {
      let seen = "";
      const done = (why: string | null) => {
        clearTimeout(t);
        line.removeListener("data", onData);
        if (why === null) line.destroy();
        resolve(why);
      };
      const onData = (d: Buffer) => {
        seen += d.toString("latin1");
        if (seen.includes("ADOPTED\n")) done(null);
        else if (seen.includes("REFUSED")) done(`refused: ${seen.trim()}`);
      };
      const t = setTimeout(() => done("no ADOPTED in time"), ADOPT_TIMEOUT_MS);
      line.on("data", onData);
      // The taker's priority before the word, not after: a niced agent on a busy CPU would answer,
      // and then serve the pod's first calls, late. All its threads (util/proc setProcessPriority).
      try {
        for (const p of w.boot.pids()) setProcessPriority(p, os.getPriority(pid));
      } catch {
        /* the taker is gone: the agent refuses below */
      }
      line.write(`ADOPT ${pid} ${startTime}\n`);
    });
  }

  private recordOf(w: { id: string }): string {
    return path.join(this.poolDir, `${w.id}.json`);
  }

  private discard(w: Warm): void {
    w.child.removeAllListeners("exit");
    killRecorded(w.pid, w.startTime);
    (w.child.stdio[3] as Duplex | null)?.destroy();
    fs.rmSync(w.dir, { recursive: true, force: true });
    fs.rmSync(this.recordOf(w), { force: true });
  }

  /**
   * Refills REFILL_DELAY_MS after a take, not inside it: a boot started beside a handout (a fork of
   * this process, then a Node start-up) would compete for the CPU with the very sandbox that was
   * just handed its agent (measured pinned to one CPU: the take went from 10-15 ms to 3-5 ms, and
   * the warm lifecycle from slower than a cold one to faster). Later takes do not push it back, so
   * a burst of sandboxes does not keep the pool empty.
   */
  private refillSoon(): void {
    if (this.stopping || this.refillSoonTimer) return;
    this.refillSoonTimer = setTimeout(() => {
      this.refillSoonTimer = null;
      this.refill();
    }, this.warmer.refillDelayMs?.() ?? REFILL_DELAY_MS);
  }

  private refill(): void {
    if (this.stopping || this.refillTimer) return;
    while (this.filling < this.o.size) {
      if (this.failures > 0) {
        // one at a time, after a pause, until a boot works again
        this.refillTimer = setTimeout(() => {
          this.refillTimer = null;
          this.boot();
          this.refill();
        }, BOOT_BACKOFF_MS * Math.min(this.failures, 10));
        return;
      }
      this.boot();
    }
  }

  private boot(): void {
    if (this.stopping || this.filling >= this.o.size) return;
    const id = `${Date.now().toString(36)}-${crypto.randomBytes(4).toString("hex")}`;
    const dir = path.join(this.poolDir, id);
    this.spawning++;
    const bootedAt = Date.now();
    this.warmer.boot(dir).then(
      (b) => {
        this.spawning--;
        this.booted(id, dir, b, bootedAt);
      },
      (e: Error) => {
        this.spawning--;
        this.o.logger.error("could not boot a warm sandbox", { error: e.message });
        this.failures++;
        fs.rmSync(dir, { recursive: true, force: true });
        this.refill();
      },
    );
  }

  private booted(id: string, dir: string, b: WarmBoot, bootedAt: number): void {
    const pid = b.child.pid!;
    const w: Warm = { id, dir, child: b.child, boot: b, pid, startTime: processStartTime(pid) ?? "", ready: false, bootedAt };
    // the record first: a factory killed from here on leaves nothing the next one cannot find
    fs.writeFileSync(this.recordOf(w), JSON.stringify({ pid: w.pid, startTime: w.startTime, dir }), { mode: 0o600 });
    if (this.stopping) {
      this.discard(w);
      return;
    }
    // Filling the pool is background work: it must not slow the pods being started meanwhile (an
    // adopted one takes its shim's priority, and its cgroups).
    this.toBackground(b);
    this.pool.push(w);
    b.child.once("exit", (code, signal) => {
      const i = this.pool.indexOf(w);
      if (i < 0) return;
      this.pool.splice(i, 1);
      this.o.logger.warn("warm sandbox died in the pool", { pid: w.pid, code, signal });
      if (w.ready) this.stats.replaced++;
      else this.failures++;
      this.discard(w);
      this.refill();
    });
    void b.ready.then((ok) => {
      if (!this.pool.includes(w)) return;
      if (!ok) {
        this.o.logger.error("a warm sandbox did not get ready", { pid: w.pid });
        this.pool.splice(this.pool.indexOf(w), 1);
        this.failures++;
        this.discard(w);
        this.refill();
        return;
      }
      // A VM's QEMU is known only once its keeper forked it.
      this.toBackground(b);
      this.failures = 0;
      w.ready = true;
      this.place(w);
      this.o.logger.info("warm sandbox ready", { pid: w.pid, ready: this.pool.filter((x) => x.ready).length });
      this.wakeWaiters();
    });
  }

  private learnTaker(pid: number): void {
    if (this.warmer.describe().kind === "none" && this.takers.learn(pid)) for (const w of this.pool) if (w.ready) this.place(w);
  }

  /** Nothing moves before a taker was learned, which only a host-agent pool learns. */
  private place(w: Warm): void {
    for (const p of w.boot.pids()) this.takers.place(p);
  }

  private toBackground(b: WarmBoot): void {
    for (const p of b.pids()) {
      setProcessPriority(p, POOL_NICE);
      this.background?.add(p);
    }
  }

  /** Stops serving and stops every pooled agent; handed-out agents are their shims' and live on. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeWaiters();
    if (this.refillTimer) clearTimeout(this.refillTimer);
    if (this.refillSoonTimer) clearTimeout(this.refillSoonTimer);
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (this.conns.size) this.o.logger.info("hanging up on open connections", { connections: this.conns.size });
    for (const c of this.conns) c.destroy();
    await closed;
    fs.rmSync(this.o.socket, { force: true });
    await this.daemons?.stop();
    const pooled = this.pool.splice(0);
    await Promise.all(
      pooled.map(async (w) => {
        this.discard(w);
        const gone = new Promise<void>((r) => (w.child.exitCode !== null || w.child.signalCode !== null ? r() : w.child.once("exit", () => r())));
        await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      }),
    );
    this.background?.remove();
    fs.rmSync(path.join(this.o.dir, "factory.pid"), { force: true });
  }
}
