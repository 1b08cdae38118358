// The factory's parked shim daemons: Node processes that have loaded the shim daemon's code
// (src/shim/park.ts) and wait for a `start` (native/oneshot.c) to take one over, so that a new
// pod's critical path starts no Node process for its shim. A warm agent takes the agent's boot
// off that path; a parked daemon takes the daemon's.
//
// Rules, as for warm agents: one use each (out of the pool before its socket is told to anyone);
// a parked daemon dies with its factory (EOF on its lifeline) unless it was handed out, and one
// handed out that nobody claims exits by itself (PARKED_CLAIM_MS); a handed-out daemon is its
// launcher's and the factory forgets it. Everything a daemon must agree on with the launcher
// (node, bundle, environment, configuration) the daemon checks itself at the hand-over, and
// refuses what it cannot honour: the launcher then spawns its own.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import type { Duplex } from "node:stream";
import { killRecorded, killWarmAgent } from "../rundir";
import { processStartTime, setProcessPriority } from "../../util/proc";
import type { CpuCgroup } from "../../util/cgroup";
import { TakerCgroups } from "./takers";
import type { Logger } from "../../util/logger";
import { bundleStamp } from "../../util/bundle-stamp";
import { HANDOUT_WORD, PARK_ARG, PARKED_LIFELINE_FD, PARKED_WORD, type FactoryStatus, type ParkedDaemon } from "./protocol";

export interface DaemonPoolOptions {
  /** The parked daemons' sockets and records. */
  dir: string;
  /** The factory's socket, which a configuration must name for its shims to take one. */
  factorySocket: string;
  /** Node, and the shim's bundle launcher (dist/bundle/shim-main.js). */
  node: string;
  script: string;
  size: number;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** A host-agent pool's agent runtime: each parked daemon takes an agent of it to hold (held.ts). */
  holdAgents?: string;
  /** Why an agent booted before `since` must not serve a pod any more (the warmer's stale), or null. */
  agentStale?: (since: number) => string | null;
}

/** A warm agent a parked daemon holds, from its PARKED line: the pool's to move and kill with the daemon until it is handed out. */
interface HeldRecord {
  pid: number;
  startTime: string;
  dir: string;
}

interface Parked {
  id: string;
  child: ChildProcess;
  pid: number;
  startTime: string;
  socket: string;
  /** It said PARKED: everything loaded, its socket listening. */
  ready: boolean;
  /** The bundle as it was when it started (util/bundle-stamp). */
  stamp: string;
  agent?: HeldRecord;
  /** When it was spawned (take() judges the agent it holds by it). */
  spawnedAt: number;
}

/** After a start that died at once, the next waits this long. */
const BACKOFF_MS = 1000;
/** How long after a take the pool starts refilling (the factory's REFILL_DELAY_MS, for the same reason). */
const REFILL_DELAY_MS = 150;
const POOL_NICE = 10;
/** A parked daemon's word: `PARKED`, or `PARKED <pid> <start time> <dir>` for the agent it holds (the directory to the line's end). */
const PARKED_LINE = new RegExp(`^${PARKED_WORD}(?: (\\d+) (\\d+) (/[^\\n]+))?\n`, "m");

export class DaemonPool {
  private readonly parked: Parked[] = [];
  private readonly stats = { handedOut: 0, misses: 0, replaced: 0 };
  private stopping = false;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The last launcher's cgroups, which a ready parked daemon waits in (takers.ts). */
  private readonly takers = new TakerCgroups();

  constructor(
    private readonly o: DaemonPoolOptions,
    private readonly background: () => CpuCgroup | null,
  ) {}

  start(): void {
    fs.mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    // a dead factory's parked daemons exit on their lifeline's EOF; what is left of them goes
    for (const f of fs.readdirSync(this.o.dir)) {
      const file = path.join(this.o.dir, f);
      if (f.endsWith(".json")) {
        try {
          const rec = JSON.parse(fs.readFileSync(file, "utf8")) as { pid: number; startTime: string; agent?: HeldRecord };
          killRecorded(rec.pid, rec.startTime);
          if (rec.agent) this.killHeld(rec.agent);
        } catch {
          /* unreadable: only the file goes */
        }
      }
      fs.rmSync(file, { force: true });
    }
    this.refill();
  }

  /** A parked daemon that is ready, out of the pool for good; null when none is. taker: the launcher's pid. */
  take(taker?: number): ParkedDaemon | null {
    if (this.takers.learn(taker)) for (const p of this.parked) if (p.ready) this.takers.place(p.pid);
    const now = bundleStamp(this.o.script);
    for (const p of [...this.parked]) {
      if (!p.ready) continue;
      // An agent it holds and the mock agent rebuilt since the daemon started: that agent may have
      // booted from the old one (never one booted after it), so the daemon goes with it.
      const agentStale = p.agent ? this.o.agentStale?.(p.spawnedAt) : null;
      if (processStartTime(p.pid) !== p.startTime || !fs.existsSync(p.socket) || p.stamp !== now || agentStale) {
        // dead, or running a bundle built before the last build: replaced, never handed out
        this.o.logger.warn("parked daemon replaced", { pid: p.pid, reason: p.stamp !== now ? "the shim was rebuilt since it started" : (agentStale ?? "dead") });
        this.stats.replaced++;
        this.discard(p);
        continue;
      }
      this.parked.splice(this.parked.indexOf(p), 1);
      const line = p.child.stdio[PARKED_LIFELINE_FD] as Duplex | null;
      line?.end(`${HANDOUT_WORD}\n`);
      p.child.removeAllListeners("exit");
      line?.removeAllListeners("data");
      p.child.unref();
      fs.rmSync(this.recordOf(p), { force: true });
      this.stats.handedOut++;
      this.failures = 0;
      this.refillSoon();
      return { pid: p.pid, socket: p.socket };
    }
    this.stats.misses++;
    this.refillSoon();
    return null;
  }

  private discard(p: Parked): void {
    const i = this.parked.indexOf(p);
    if (i >= 0) this.parked.splice(i, 1);
    p.child.removeAllListeners("exit");
    killRecorded(p.pid, p.startTime);
    if (p.agent) this.killHeld(p.agent);
    (p.child.stdio[PARKED_LIFELINE_FD] as Duplex | null)?.destroy();
    fs.rmSync(this.recordOf(p), { force: true });
    fs.rmSync(p.socket, { force: true });
  }

  status(): NonNullable<FactoryStatus["daemons"]> {
    const ready = this.parked.filter((p) => p.ready).length;
    return { size: this.o.size, ready, starting: this.parked.length - ready, ...this.stats };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all(
      [...this.parked].map(async (p) => {
        this.discard(p);
        const gone = new Promise<void>((r) => (p.child.exitCode !== null || p.child.signalCode !== null ? r() : p.child.once("exit", () => r())));
        await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      }),
    );
  }

  /** A held agent whose daemon is gone or going: it would exit by itself (its holder gone), but its directory would stay. */
  private killHeld(a: HeldRecord): void {
    // only ever one of the factory's own pool (`<factory dir>/pool/<id>`, service.ts), whatever a line said
    killWarmAgent(a, path.join(path.dirname(this.o.dir), "pool"));
  }

  private writeRecord(p: Parked): void {
    fs.writeFileSync(this.recordOf(p), JSON.stringify({ pid: p.pid, startTime: p.startTime, ...(p.agent ? { agent: p.agent } : {}) }), { mode: 0o600 });
  }

  private recordOf(p: { id: string }): string {
    return path.join(this.o.dir, `${p.id}.json`);
  }

  private refillSoon(): void {
    if (this.stopping || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refill();
    }, REFILL_DELAY_MS);
  }

  private refill(): void {
    if (this.stopping || this.timer) return;
    if (this.failures > 0 && this.parked.length < this.o.size) {
      // one at a time, after a pause, until a start works again
      this.timer = setTimeout(() => {
        this.timer = null;
        this.spawnOne();
        this.refill();
      }, BACKOFF_MS * Math.min(this.failures, 10));
      return;
    }
    while (this.parked.length < this.o.size) if (!this.spawnOne()) return;
  }

  private spawnOne(): boolean {
    if (this.stopping || this.parked.length >= this.o.size) return false;
    const id = crypto.randomBytes(6).toString("hex");
    const socket = path.join(this.o.dir, `${id}.sock`);
    const env = { ...this.o.env };
    delete env.NODE_EXTRA_CA_CERTS;
    let child: ChildProcess;
    try {
      // its stderr is the factory's (a refusal says why there); after a hand-over, the pod's log
      child = spawn(this.o.node, [this.o.script, PARK_ARG, socket, this.o.factorySocket, ...(this.o.holdAgents ? [this.o.holdAgents] : [])], { detached: true, stdio: ["ignore", "ignore", "inherit", "ignore", "pipe"], env });
    } catch (e) {
      this.o.logger.error("could not start a parked daemon", { error: (e as Error).message });
      this.failures++;
      return false;
    }
    if (!child.pid) {
      child.on("error", () => {});
      this.failures++;
      return false;
    }
    const p: Parked = { id, child, pid: child.pid, startTime: processStartTime(child.pid) ?? "", socket, ready: false, stamp: bundleStamp(this.o.script), spawnedAt: Date.now() };
    this.writeRecord(p);
    const line = child.stdio[PARKED_LIFELINE_FD] as Duplex | null;
    line?.on("error", () => {});
    let said = "";
    line?.on("data", (d: Buffer) => {
      said += d.toString("latin1");
      const m = p.ready ? null : PARKED_LINE.exec(said);
      if (m) {
        p.ready = true;
        if (m[1]) {
          p.agent = { pid: Number(m[1]), startTime: m[2], dir: m[3] };
          // dead with the daemon from here on, also if the factory dies first (start() reads the record)
          this.writeRecord(p);
        }
        this.failures = 0;
        this.takers.place(p.pid);
        if (p.agent) this.takers.place(p.agent.pid);
      }
    });
    setProcessPriority(p.pid, POOL_NICE);
    this.background()?.add(p.pid);
    this.parked.push(p);
    child.once("exit", (code, signal) => {
      const i = this.parked.indexOf(p);
      if (i < 0) return;
      this.parked.splice(i, 1);
      if (p.agent) this.killHeld(p.agent);
      // one that never got ready is a failure to back off from; a later death is replaced
      const neverReady = !p.ready;
      fs.rmSync(this.recordOf(p), { force: true });
      fs.rmSync(socket, { force: true });
      this.o.logger.warn("a parked daemon exited in the pool", { pid: p.pid, code, signal });
      if (neverReady && Date.now() - p.spawnedAt < 10_000) this.failures++;
      else this.failures = 0;
      this.refill();
    });
    return true;
  }
}
