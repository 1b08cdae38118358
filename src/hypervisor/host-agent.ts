// The host agent (hypervisor = "none" in configurations and VM records): the
// agent is a host process (shimlab's mock agent), reached over a unix socket
// with the hybrid-vsock handshake, as a Firecracker guest's agent would be.
// After a dead shim, `delete` reaps what it leaves with host-agent-reap.ts.
import fs from "node:fs";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import { HybridVsockTransport } from "../agent/transport";
import type { Hypervisor, SandboxVm, StartOptions, VmExit } from "./types";
import { processStartTime, socketIn, writeVmRecord } from "./rundir";
import { reapRuncOrphans } from "./orphans";
import { inBundle } from "../util/entry";

export const AGENT_PORT = 1024;

export interface HostAgentOptions {
  /** runc | host | auto, passed to the mock agent. */
  agentRuntime: string;
  /** Extra environment for the agent (its failpoints, say). */
  agentEnv?: Record<string, string>;
  debug?: boolean;
}

export function mockAgentEntry(): string {
  return inBundle ? path.join(__dirname, "mock-agent-main.js") : path.resolve(__dirname, "..", "mock-agent", "main.js");
}

/** How long to wait for the agent's READY before dialling anyway (dialling then retries within its own budget). */
const READY_TIMEOUT_MS = 10_000;

/**
 * Resolves once the agent says READY on fd 3 (true), or exits or stays silent
 * past the timeout (false): the dial that follows reports the real problem.
 * Waiting for the word saves polling the socket with backoff, which cost up to
 * half the agent's start-up time in idle retries.
 */
function agentReady(child: ChildProcess, timeoutMs: number): Promise<boolean> {
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
  readonly exited: Promise<VmExit>;
  private stopped = false;

  constructor(
    private readonly child: ChildProcess,
    readonly agentTransport: HybridVsockTransport,
    private readonly runcRoot?: string,
  ) {
    // it may have died already, while we waited for its READY
    this.exited =
      child.exitCode !== null || child.signalCode !== null
        ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
        : new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return !this.stopped && this.child.exitCode === null && this.child.signalCode === null;
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
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM"); // the agent kills its containers on SIGTERM
      const t = setTimeout(() => this.child.kill("SIGKILL"), 3000);
      await this.exited;
      clearTimeout(t);
    }
    // An agent that died (SIGKILL, crash) could not: do what a VM's death would.
    reapRuncOrphans(this.runcRoot);
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
    const vm = this.boot(s);
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
    return this.boot(s);
  }

  private async boot(s: StartOptions): Promise<HostAgent> {
    fs.mkdirSync(s.runDir, { recursive: true, mode: 0o700 });
    const sock = socketIn(s.runDir, "agent.sock");
    const args = [
      mockAgentEntry(),
      "--listen",
      sock,
      "--hvsock",
      "--state-dir",
      path.join(s.runDir, "agent"),
      "--runtime",
      this.o.agentRuntime,
      "--watch-fd",
      "3",
      "--ready-fd",
      "3",
      "--log",
      path.join(s.runDir, "agent.log"),
    ];
    if (this.o.debug) args.push("--debug");
    const env = { ...(s.env ?? process.env), ...this.o.agentEnv };
    delete env.NODE_EXTRA_CA_CERTS;
    const child = spawn(process.execPath, args, {
      cwd: s.runDir,
      // fd 3 is the agent's lifeline: when this shim dies, it reads EOF and exits.
      stdio: ["ignore", "ignore", "ignore", "pipe"],
      env,
    });
    if (!child.pid) throw new Error("could not start the mock agent");
    writeVmRecord(s.runDir, {
      kind: "none",
      pid: child.pid,
      startTime: processStartTime(child.pid) ?? "",
      agentUrl: `hvsock://${sock}:${AGENT_PORT}`,
      runcRoot: path.join(s.runDir, "agent", "runc"),
    });
    const ready = await agentReady(child, READY_TIMEOUT_MS);
    s.logger.info("mock agent started", { pid: child.pid, socket: sock, runtime: this.o.agentRuntime, ready });
    return new HostAgent(child, new HybridVsockTransport(sock, AGENT_PORT), path.join(s.runDir, "agent", "runc"));
  }
}
