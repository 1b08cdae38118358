// The host agent (hypervisor = "none" in configurations and VM records): the
// agent is a host process (shimlab's mock agent), reached over a unix socket
// with the hybrid-vsock handshake, as a Firecracker guest's agent would be.
// After a dead shim, `delete` reaps what it leaves with host-agent-reap.ts.
import fs from "node:fs";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import type { Duplex, Readable } from "node:stream";
import { HybridVsockTransport, PreDialedTransport, type Transport } from "../agent/transport";
import type { Hypervisor, SandboxVm, StartOptions, VmExit } from "./types";
import { killRecorded, processStartTime, socketIn, writeVmRecord } from "./rundir";
import { cgroupParent, joinCgroupsOfLater } from "../util/cgroup";
import { takeWarmAgent, type WarmAgent } from "./factory/client";
import { claimHeld } from "./factory/held";
import { reapRuncOrphans } from "./orphans";
import { adoptedProcess, childProcess, type HostProcess as AgentProcess } from "./process";
import { inBundle } from "../util/entry";

export const AGENT_PORT = 1024;

export interface HostAgentOptions {
  /** runc | host | auto, passed to the mock agent. */
  agentRuntime: string;
  /** A `shimlab factory` socket: sandboxes take a warm agent from its pool, and boot one only when it has none. */
  factorySocket?: string;
  /** Extra environment for the agent (its failpoints, say). */
  agentEnv?: Record<string, string>;
  debug?: boolean;
}

/**
 * The mock agent's entry: its bundle's launcher (code cache, mapped source) whenever the build made
 * one that is not stale, also for a caller running from the module tree (the CLI's factory, the
 * harness): a factory's agents booted from the tree cost 1.2 MB more each, and boot slower.
 */
export function mockAgentEntry(): string {
  if (inBundle) return path.join(__dirname, "mock-agent-main.js");
  const bundled = path.resolve(__dirname, "..", "bundle", "mock-agent-main.js");
  const mtime = (f: string) => fs.statSync(f, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  // as bin/: a bundle older than tsc's last build is not the code in dist/
  if (!process.env.SHIMLAB_NO_BUNDLE && mtime(bundled) > 0 && mtime(bundled) >= mtime(path.resolve(__dirname, "..", ".tsbuildinfo"))) return bundled;
  return path.resolve(__dirname, "..", "mock-agent", "main.js");
}

/** How long to wait for the agent's READY before dialling anyway (dialling then retries within its own budget). */
export const READY_TIMEOUT_MS = 10_000;

/**
 * Resolves once the agent says READY on fd 3 (true), or exits or stays silent
 * past the timeout (false): the dial that follows reports the real problem.
 * Waiting for the word saves polling the socket with backoff, which cost up to
 * half the agent's start-up time in idle retries.
 */
export function agentReady(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const line = child.stdio[3] as Readable | null;
  if (!line) return Promise.resolve(false);
  return new Promise((resolve) => {
    let seen = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      line.removeListener("data", onData);
      child.removeListener("exit", onExit);
      resolve(ok);
    };
    const onData = (d: Buffer) => {
      seen += d.toString("latin1");
      if (seen.includes("READY\n")) done(true);
    };
    const onExit = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    line.on("data", onData);
    child.once("exit", onExit);
  });
}

class HostAgent implements SandboxVm {
  readonly kind = "none" as const;
  readonly guest = false;
  /** Containers join the pod's namespace through their specs: nothing for the agent to set up. */
  readonly network = null;
  /** The containers join the pod's namespace themselves: its loopback is theirs already. */
  openLoopback(): Promise<null> {
    return Promise.resolve(null);
  }
  private stopped = false;
  private transport: Transport;

  constructor(
    private readonly proc: AgentProcess,
    transport: HybridVsockTransport,
    private readonly runcRoot?: string,
    /** The agent's directory when it is not under the sandbox's run dir (a factory's agent): it goes with the agent. */
    private readonly ownDir?: string,
    /** A connection to it dialled already (a parked daemon's held agent): predial() hands it to the first connect. */
    private dialled?: Duplex,
  ) {
    this.transport = transport;
  }

  get agentTransport(): Transport {
    return this.transport;
  }

  /** Dials the agent now, for an agent up before Create: the sandbox's connect takes that connection. */
  predial(): void {
    if (!(this.transport instanceof PreDialedTransport)) this.transport = new PreDialedTransport(this.transport, this.dialled);
    this.dialled = undefined;
  }

  get exited(): Promise<VmExit> {
    return this.proc.exited;
  }

  get pid(): number {
    return this.proc.pid;
  }

  get alive(): boolean {
    return !this.stopped && this.proc.alive();
  }

  async shareRootfs(_id: string, hostPath: string): Promise<string> {
    return hostPath; // same host, same paths
  }

  async unshareRootfs(): Promise<void> {}

  sandboxStorages() {
    return [];
  }

  async stop(): Promise<void> {
    if (this.stopped) return this.exited.then(() => {});
    this.stopped = true;
    if (this.transport instanceof PreDialedTransport) this.transport.close();
    this.dialled?.destroy();
    if (this.proc.alive()) {
      this.proc.kill("SIGTERM"); // the agent kills its containers on SIGTERM
      const t = setTimeout(() => this.proc.kill("SIGKILL"), 3000);
      await this.exited;
      clearTimeout(t);
    }
    // An agent that died (SIGKILL, crash) could not: do what a VM's death would.
    reapRuncOrphans(this.runcRoot);
    if (this.ownDir) fs.rmSync(this.ownDir, { recursive: true, force: true });
  }
}

export class HostAgentHypervisor implements Hypervisor {
  readonly kind = "none" as const;

  /** An agent booted ahead of Create for this run dir, not yet handed out. */
  private warm: { runDir: string; vm: Promise<HostAgent> } | null = null;

  constructor(private readonly o: HostAgentOptions) {}

  /**
   * Boots the agent for runDir now, so that Create finds it up (Kata's VM
   * factory does the same for VMs): the daemon calls this as it starts, and
   * the agent's own start-up then overlaps containerd's way to Create.
   */
  prestart(s: StartOptions): void {
    if (this.warm) return;
    const vm = this.acquire(s).then((a) => (a.predial(), a));
    vm.catch(() => {});
    this.warm = { runDir: s.runDir, vm };
  }

  /** Stops an agent booted ahead that no start took (the shim is going away, or runs another configuration). */
  async release(): Promise<void> {
    const w = this.warm;
    this.warm = null;
    if (!w) return;
    const vm = await w.vm.catch(() => null);
    await vm?.stop();
    fs.rmSync(w.runDir, { recursive: true, force: true });
  }

  async start(s: StartOptions): Promise<SandboxVm> {
    const w = this.warm;
    this.warm = null;
    if (w) {
      const vm = await w.vm.catch(() => null);
      if (vm && vm.alive && w.runDir === s.runDir && !s.env) {
        s.logger.info("mock agent adopted", { pid: vm.pid });
        return vm;
      }
      await vm?.stop();
    }
    return this.acquire(s);
  }

  /**
   * A warm agent from the factory when one is configured and this sandbox's agent needs nothing of
   * its own (an environment: failpoints, a trace); else, or when the factory has none to give or
   * is gone, one booted here. The factory is an optimisation: nothing fails for its sake.
   */
  private async acquire(s: StartOptions): Promise<HostAgent> {
    if (this.o.factorySocket && !s.env && !this.o.agentEnv) {
      // the agent a parked daemon held for the pod it became (factory/held.ts): claimed before any await, or dropped
      const held = claimHeld({ factorySocket: this.o.factorySocket, agentRuntime: this.o.agentRuntime, cgroupParent: cgroupParent() });
      if (held) return this.adopt(s, held.agent, held.conn);
      try {
        return await this.adopt(s, await takeWarmAgent(this.o.factorySocket, { kind: "none", agentRuntime: this.o.agentRuntime }));
      } catch (e) {
        s.logger.info("no warm agent from the factory: booting one", { factory: this.o.factorySocket, reason: (e as Error).message });
      }
    }
    return this.boot(s);
  }

  private async adopt(s: StartOptions, a: WarmAgent, dialled?: Duplex): Promise<HostAgent> {
    fs.mkdirSync(s.runDir, { recursive: true, mode: 0o700 });
    // From here the agent is this sandbox's: its record says what `delete` reaps after a crash, its directory included.
    writeVmRecord(s.runDir, { kind: "none", pid: a.pid, startTime: a.startTime, agentUrl: `hvsock://${a.socket}:${AGENT_PORT}`, runcRoot: a.runcRoot, dirs: [a.dir] });
    // as if this shim had spawned it: its cgroups (a systemd service's, containerd's), not the factory's,
    // before it forks runc for the pod. The move waits for an RCU grace period, off this thread.
    await joinCgroupsOfLater(a.pid);
    s.logger.info(dialled ? "mock agent held by the parked daemon" : "mock agent taken from the factory", { pid: a.pid, socket: a.socket });
    return new HostAgent(adoptedProcess(a.pid, a.startTime), new HybridVsockTransport(a.socket, AGENT_PORT), a.runcRoot, a.dir, dialled);
  }

  private async boot(s: StartOptions): Promise<HostAgent> {
    const a = spawnHostAgent({ dir: s.runDir, agentRuntime: this.o.agentRuntime, debug: this.o.debug, env: { ...(s.env ?? process.env), ...this.o.agentEnv } });
    writeVmRecord(s.runDir, {
      kind: "none",
      pid: a.child.pid!,
      startTime: processStartTime(a.child.pid!) ?? "",
      agentUrl: `hvsock://${a.socket}:${AGENT_PORT}`,
      runcRoot: a.runcRoot,
    });
    const ready = await agentReady(a.child, READY_TIMEOUT_MS);
    s.logger.info("mock agent started", { pid: a.child.pid, socket: a.socket, runtime: this.o.agentRuntime, ready });
    return new HostAgent(childProcess(a.child), new HybridVsockTransport(a.socket, AGENT_PORT), a.runcRoot);
  }
}

export interface SpawnedAgent {
  child: ChildProcess;
  socket: string;
  runcRoot: string;
}

/**
 * Spawns the mock agent for dir (its socket, state and log there); fd 3 of the child is its
 * lifeline and READY line (lifeline.ts of the mock agent). detached: a factory's agents get a
 * session of their own, so that a signal to the factory's process group reaches none of them.
 */
export function spawnHostAgent(o: { dir: string; agentRuntime: string; debug?: boolean; env: NodeJS.ProcessEnv; detached?: boolean }): SpawnedAgent {
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const sock = socketIn(o.dir, "agent.sock");
  const args = [mockAgentEntry(), "--listen", sock, "--hvsock", "--state-dir", path.join(o.dir, "agent"), "--runtime", o.agentRuntime, "--watch-fd", "3", "--ready-fd", "3", "--log", path.join(o.dir, "agent.log")];
  if (o.debug) args.push("--debug");
  const env = { ...o.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(process.execPath, args, {
    cwd: o.dir,
    // fd 3 is the agent's lifeline: when its holder dies, it reads EOF and exits.
    stdio: ["ignore", "ignore", "ignore", "pipe"],
    env,
    detached: o.detached,
  });
  if (!child.pid) throw new Error("could not start the mock agent");
  return { child, socket: sock, runcRoot: path.join(o.dir, "agent", "runc") };
}
