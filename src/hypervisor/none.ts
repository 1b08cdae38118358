// hypervisor = "none": the agent is a host process (shimlab's mock agent),
// reached over a unix socket with the hybrid-vsock handshake, as a
// Firecracker guest's agent would be.
import fs from "node:fs";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { HybridVsockTransport } from "../agent/transport";
import type { Hypervisor, SandboxVm, StartOptions, VmExit } from "./types";
import { processStartTime, socketIn, writeVmRecord } from "./rundir";
import { interposeAgentLink } from "../faults/agent-link";
import type { FaultProxy } from "../faults/proxy";
import { reapRuncOrphans } from "./orphans";

export const AGENT_PORT = 1024;

export interface NoneOptions {
  /** runc | host | auto, passed to the mock agent. */
  agentRuntime: string;
  /** Extra environment for the agent (its failpoints, say). */
  agentEnv?: Record<string, string>;
  debug?: boolean;
}

export function mockAgentEntry(): string {
  return path.resolve(__dirname, "..", "mock-agent", "main.js");
}

class HostAgent implements SandboxVm {
  readonly kind = "none" as const;
  readonly guest = false;
  readonly exited: Promise<VmExit>;
  private stopped = false;

  constructor(
    private readonly child: ChildProcess,
    readonly agentTransport: HybridVsockTransport,
    private readonly link: FaultProxy | null = null,
    private readonly runcRoot?: string,
  ) {
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
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
    await this.link?.stop().catch(() => {});
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

export class NoneHypervisor implements Hypervisor {
  readonly kind = "none" as const;

  constructor(private readonly o: NoneOptions) {}

  async start(s: StartOptions): Promise<SandboxVm> {
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
    s.logger.info("mock agent started", { pid: child.pid, socket: sock, runtime: this.o.agentRuntime });
    // Wire faults between shim and agent, when configured: the shim dials a proxy instead.
    let link: FaultProxy | null = null;
    try {
      link = await interposeAgentLink(env, sock, socketIn(s.runDir, "agent-link.sock"));
    } catch (e) {
      child.kill("SIGKILL");
      throw e;
    }
    if (link) s.logger.warn("agent link faults installed", { proxy: link.o.listen });
    return new HostAgent(child, new HybridVsockTransport(link ? link.o.listen : sock, AGENT_PORT), link, path.join(s.runDir, "agent", "runc"));
  }
}
