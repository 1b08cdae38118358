// The pod: one sandbox per shim, one agent (in a VM or a host process) per
// sandbox, and the containers created in it.
import fs from "node:fs";
import { AgentClient, type AgentApi } from "../agent/client";
import type { DialOptions } from "../agent/dial";
import type { GuestNetwork, Hypervisor, SandboxVm } from "../hypervisor/types";
import { failedPrecondition, isInvalidArgument, notFound, unavailable } from "../errdefs";
import type { Logger } from "../util/logger";
import { Container, type ContainerHost, type CreateOptions } from "./container";
import { mountsBelow } from "./mount";
import type { PortRelay } from "./port-relay";
import type { ShareOptions } from "../hypervisor/types";
import type { Process } from "./process";

export interface SandboxHooks {
  onExit(c: Container, p: Process): void;
  onOom(containerId: string): void;
  /** The VM or agent went away while the sandbox was running. */
  onLost?(reason: string): void;
}

export interface SandboxOptions {
  id: string;
  namespace: string;
  runDir: string;
  hypervisor: Hypervisor;
  logger: Logger;
  hooks: SandboxHooks;
  dial?: DialOptions;
  hostname?: string;
  /** Environment for the agent or VM process. */
  env?: NodeJS.ProcessEnv;
  /** The sandbox container's annotations, for the hypervisor. */
  annotations?: Record<string, string>;
  /** The pod's network namespace, from the sandbox's spec. */
  netns?: string;
}

export type SandboxState = "new" | "starting" | "ready" | "lost" | "stopping" | "stopped";

export class Sandbox implements ContainerHost {
  /** The pod's containers, from their create until their delete: the one list the shim keeps of them. */
  private readonly byId = new Map<string, Container>();
  private vm: SandboxVm | null = null;
  private client: AgentClient | null = null;
  private relay: PortRelay | null = null;
  private relaySetup: Promise<void> = Promise.resolve();
  private state_: SandboxState = "new";
  private stopping_: Promise<void> | null = null;
  readonly logger: Logger;

  constructor(private readonly o: SandboxOptions) {
    this.logger = o.logger.child({ sandbox: o.id });
  }

  get id(): string {
    return this.o.id;
  }

  get sandboxId(): string {
    return this.o.id;
  }

  get state(): SandboxState {
    return this.state_;
  }

  /** Kept after the sandbox stops, so that containerd can still ask a container's state and delete it. */
  get containers(): ReadonlyMap<string, Container> {
    return this.byId;
  }

  get runDir(): string {
    return this.o.runDir;
  }

  get agent(): AgentApi {
    if (!this.client) throw unavailable(`sandbox ${this.id} has no agent`);
    return this.client.agent;
  }

  get agentClient(): AgentClient | null {
    return this.client;
  }

  get vmHandle(): SandboxVm | null {
    return this.vm;
  }

  get pid(): number {
    return this.vm?.pid ?? 0;
  }

  get guest(): boolean {
    return this.vm?.guest ?? false;
  }

  /** Boots the VM (or agent process), dials the agent, and creates the sandbox in it. */
  async start(): Promise<void> {
    if (this.state_ !== "new") throw failedPrecondition(`sandbox ${this.id} is ${this.state_}`);
    this.state_ = "starting";
    fs.mkdirSync(this.o.runDir, { recursive: true, mode: 0o700 });
    try {
      this.vm = await this.o.hypervisor.start({
        sandboxId: this.id,
        namespace: this.o.namespace,
        runDir: this.o.runDir,
        logger: this.logger,
        env: this.o.env,
        annotations: this.o.annotations,
        netns: this.o.netns,
      });
      const vm = this.vm;
      // If the VM dies while we dial, stop dialling.
      const ac = new AbortController();
      vm.exited.then(() => ac.abort());
      this.client = await AgentClient.connect(vm.agentTransport, { ...this.o.dial, signal: ac.signal });
      // Kata's order: the guest's network first, so that the sandbox and its containers start with it.
      if (vm.network) await this.setupNetwork(vm.network);
      await this.client.agent.CreateSandbox({
        hostname: this.o.hostname ?? "",
        sandboxId: this.id,
        storages: vm.sandboxStorages(),
        sandboxPidns: false,
      });
      // Off the pod's path: the redirect takes an nsenter and an iptables in the pod's namespace
      // (~76 ms of a warm QEMU pod's RunPodSandbox), and nothing dials it before a container
      // serves. stop() waits for it, so a rule it makes is never left behind.
      this.relaySetup = this.openPortRelay(vm).catch((e: Error) => this.logger.warn("port-forward into the VM is not available", { error: e.message }));
    } catch (e) {
      this.logger.error("sandbox start failed", { error: (e as Error).message });
      await this.teardown();
      this.state_ = "stopped";
      throw e;
    }
    this.state_ = "ready";
    this.vm.exited.then((x) => this.lost(`${this.vm?.kind === "qemu" ? "VM" : "agent"} exited (code ${x.code}, signal ${x.signal})`));
    this.client.on("close", () => this.lost("agent connection closed"));
    void this.oomLoop();
    this.logger.info("sandbox ready", { pid: this.pid, agent: this.vm.agentTransport.url });
  }

  private async setupNetwork(n: GuestNetwork): Promise<void> {
    const agent = this.client!.agent;
    for (const i of n.interfaces) await agent.UpdateInterface({ interface: i });
    if (n.routes.length) await agent.UpdateRoutes({ routes: { Routes: n.routes } });
    this.logger.info("guest network set up", { interfaces: n.interfaces.map((i) => `${i.name} ${i.IPAddresses?.map((a) => `${a.address}/${a.mask}`).join(",")}`).join("; "), routes: n.routes.length });
  }

  /**
   * A VM pod's localhost, carried into the guest, so that CRI's PortForward (which dials
   * localhost:<port> in the pod's namespace) reaches the servers there. Best effort: the pod runs
   * without it, and a connection then gets what it got before (refused), with the reason logged.
   */
  private async openPortRelay(vm: SandboxVm): Promise<void> {
    if (!vm.guest) return;
    // Only shimlab's agent serves shimlab.v1.PortForward. Port 0 is refused as InvalidArgument by
    // one that does, before anything is dialled; a kata-agent answers Unimplemented. No rule is
    // put in the pod's namespace for an agent that could not carry its connections.
    const portForward = await this.client!.portForward();
    const probe = await portForward.Dial({ port: 0 }).then(
      () => null,
      (e: Error) => e,
    );
    if (!isInvalidArgument(probe)) {
      this.logger.warn("port-forward into the VM is not available: the agent does not serve shimlab.v1.PortForward", { answer: probe ? String(probe) : "a stream for port 0" });
      return;
    }
    let loopback;
    try {
      loopback = await vm.openLoopback();
    } catch (e) {
      this.logger.warn("port-forward into the VM is not available: the pod's loopback could not be redirected", { error: (e as Error).message });
      return;
    }
    if (!loopback) return;
    const { PortRelay } = await import("./port-relay");
    const relay = new PortRelay(portForward, this.logger);
    this.relay = relay;
    loopback.onConnection((sock, port) => relay.handle(sock, port));
  }

  /** Why the sandbox lost its agent, once it has. */
  lostReason: string | null = null;

  private lost(reason: string): void {
    if (this.state_ !== "ready") return;
    this.state_ = "lost";
    this.lostReason = reason;
    this.logger.warn("sandbox lost its agent", { reason });
    // Pending ReadStdout/WaitProcess calls fail with the connection: each
    // running process reports exit 255 through its own waiter.
    this.client?.close();
    this.o.hooks.onLost?.(reason);
  }

  /** Kata polls GetOOMEvent for the sandbox's lifetime; no deadline on it. */
  private async oomLoop(): Promise<void> {
    while (this.state_ === "ready" && this.client && !this.client.closed) {
      try {
        const ev = await this.client.agent.GetOOMEvent({});
        if (ev.containerId) this.o.hooks.onOom(ev.containerId);
      } catch (e) {
        if (this.state_ !== "ready" || this.client?.closed) return;
        this.logger.debug("GetOOMEvent failed; retrying", { error: (e as Error).message });
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  async createContainer(o: CreateOptions): Promise<Container> {
    if (this.state_ !== "ready") throw failedPrecondition(`sandbox ${this.id} is ${this.state_}: cannot create container ${o.id}`);
    this.o.hypervisor.admit?.(o.spec);
    const c = await Container.create(o, this);
    this.byId.set(c.id, c);
    return c;
  }

  container(id: string): Container {
    const c = this.byId.get(id);
    if (!c) throw notFound("container not created");
    return c;
  }

  remove(id: string): void {
    this.byId.delete(id);
  }

  shareRootfs(containerId: string, hostPath: string, o?: ShareOptions): Promise<string> {
    if (!this.vm) throw unavailable("no VM");
    return this.vm.shareRootfs(containerId, hostPath, o);
  }

  unshareRootfs(containerId: string): Promise<void> {
    return this.vm ? this.vm.unshareRootfs(containerId) : Promise.resolve();
  }

  processExited(c: Container, p: Process): void {
    this.o.hooks.onExit(c, p);
  }

  /** Destroys the sandbox in the agent, stops the VM and removes the run directory; a second call waits for the first's end. */
  stop(): Promise<void> {
    if (this.state_ === "stopped") return Promise.resolve();
    return (this.stopping_ ??= this.stopOnce());
  }

  /** The stop under way, if any (never rejects): what an exit must wait for. */
  stopping(): Promise<void> | null {
    return this.stopping_?.catch(() => {}) ?? null;
  }

  private async stopOnce(): Promise<void> {
    const wasReady = this.state_ === "ready";
    this.state_ = "stopping";
    await this.relaySetup;
    // Forwarded connections are reset before the guest's servers go: an end of stream would pass for a clean one.
    this.relay?.close();
    if (wasReady && this.client && !this.client.closed) {
      await this.client.agent.DestroySandbox({}, { timeoutMs: 15_000 }).catch((e) => this.logger.warn("DestroySandbox failed", { error: e.message }));
    }
    for (const c of this.byId.values()) await c.forceCleanup();
    await this.teardown();
    this.state_ = "stopped";
  }

  private async teardown(): Promise<void> {
    await this.relaySetup;
    this.relay?.close();
    this.relay = null;
    this.client?.close();
    if (this.vm) await this.vm.stop().catch((e) => this.logger.error("stopping the VM failed", { error: (e as Error).message }));
    // A recursive remove would walk into a rootfs still bound under a VM's shared dir and delete the container's files.
    const left = mountsBelow(this.o.runDir);
    if (left.length) this.logger.error("mounts left in the sandbox run dir; not removing it", { mounts: left.join(" ") });
    else fs.rmSync(this.o.runDir, { recursive: true, force: true });
  }
}
