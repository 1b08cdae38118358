// A Hypervisor for tests of the shim's core that must run anywhere, root or
// not: the sandbox's agent is shimlab's mock agent, served in this very
// process over a unix socket in the sandbox's run dir, and it runs containers
// as plain host processes (its host runtime: no runc, no namespaces, no
// cgroups, no mounts). runwasi tests its shim service against a fake Instance
// the same way. The shim side is untouched: it dials the socket, speaks ttrpc
// to the agent and reads exits, output and OOMs as it would from a VM.
import fs from "node:fs";
import path from "node:path";
import { Server } from "../ttrpc/server";
import { AgentService, Health } from "../gen/grpc";
import { UnixTransport } from "../agent/transport";
import type { Hypervisor, SandboxVm, StartOptions, VmExit } from "../hypervisor/types";
import { socketIn } from "../hypervisor/rundir";
import { MockAgent } from "../mock-agent/agent";
import { HostRuntime } from "../mock-agent/runtime/host";
import type { Runtime } from "../mock-agent/runtime/types";
import { nullLogger, type Logger } from "../util/logger";

export interface InProcessOptions {
  /** What runs the containers; the host runtime by default, which needs no privilege. */
  runtime?: () => Runtime;
  /** The agent's log; silent by default. */
  logger?: Logger;
}

/** One sandbox's agent, alive from start() to stop() (or crash()). */
export class InProcessVm implements SandboxVm {
  readonly kind = "none" as const;
  readonly guest = false;
  readonly network = null;
  /** The agent lives in this process: its pid is the truthful one to report for every task. */
  readonly pid = process.pid;
  readonly exited: Promise<VmExit>;
  /** Rootfs paths shared with the agent, by container id: what the shim asked to be visible. */
  readonly shared = new Map<string, string>();
  private resolveExit!: (x: VmExit) => void;
  private gone = false;

  constructor(
    readonly agent: MockAgent,
    private readonly server: Server,
    readonly agentTransport: UnixTransport,
  ) {
    this.exited = new Promise((r) => (this.resolveExit = r));
  }

  get alive(): boolean {
    return !this.gone;
  }

  async shareRootfs(containerId: string, hostPath: string): Promise<string> {
    // Same host, same paths, as with the host-process agent.
    this.shared.set(containerId, hostPath);
    return hostPath;
  }

  async unshareRootfs(containerId: string): Promise<void> {
    this.shared.delete(containerId);
  }

  sandboxStorages() {
    return [];
  }

  openLoopback(): Promise<null> {
    return Promise.resolve(null);
  }

  /** As the host agent does on SIGTERM: its containers are killed and reaped before it goes. */
  async stop(): Promise<void> {
    if (this.gone) return this.exited.then(() => {});
    this.gone = true;
    await this.agent.shutdown();
    await this.server.close(0);
    fs.rmSync(this.agentTransport.path, { force: true });
    this.resolveExit({ code: 0, signal: null });
  }

  /**
   * The agent dies under the shim, as a VM killed from outside would: its
   * connections are cut first, so that the shim learns of the loss from the
   * wire before anything else, then its containers go with it.
   */
  async crash(): Promise<void> {
    if (this.gone) return;
    this.gone = true;
    await this.server.close(0);
    this.resolveExit({ code: null, signal: "SIGKILL" });
    await this.agent.shutdown();
    fs.rmSync(this.agentTransport.path, { force: true });
  }
}

export class InProcessHypervisor implements Hypervisor {
  readonly kind = "none" as const;
  /** Every agent started, in order, for tests to reach into (its runtime, its shares). */
  readonly vms: InProcessVm[] = [];

  constructor(private readonly o: InProcessOptions = {}) {}

  async start(s: StartOptions): Promise<SandboxVm> {
    fs.mkdirSync(s.runDir, { recursive: true, mode: 0o700 });
    const stateDir = path.join(s.runDir, "agent");
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const agent = new MockAgent({
      runtime: this.o.runtime?.() ?? new HostRuntime(),
      stateDir,
      logger: this.o.logger ?? nullLogger,
      guest: false,
      network: null,
      reaper: null,
      // The host agent process exits here; in-process, stop() (which the sandbox calls next) ends it.
      onDestroyed: () => {},
    });
    const server = new Server();
    server.register(AgentService, agent.service);
    server.register(Health, agent.health);
    const sock = socketIn(s.runDir, "agent.sock");
    await server.listen(sock);
    const vm = new InProcessVm(agent, server, new UnixTransport(sock));
    this.vms.push(vm);
    return vm;
  }

  /** Nothing is booted ahead here: every agent belongs to the sandbox it was started for. */
  release(): Promise<void> {
    return Promise.resolve();
  }
}
