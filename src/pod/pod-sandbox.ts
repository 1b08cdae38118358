// A sandbox whose life containerd drives through the Sandbox API (CRI's shim
// sandboxer): created, started, stopped, waited for and shut down by calls of
// its own, not by a pause container's task. It wraps the pod's Sandbox (the
// agent on the host or in a VM) with what the pause container used to give
// the pod: the process holding its namespaces (sandbox-init.ts), the files
// CRI no longer mounts (pod-files.ts), and an exit to wait for.
import os from "node:os";
import type { Logger } from "../util/logger";
import type { Container } from "./container";
import type { ExitInfo, Process } from "./process";
import { NULL_IO } from "./process";
import type { Sandbox } from "./sandbox";
import type { PodConfig } from "./pod-config";
import { PodFiles } from "./pod-files";
import { ownOomScoreAdj, sandboxInitSpec, writeInitRootfs } from "./sandbox-init";
import { SandboxStateMachine, type SandboxLife } from "./sandbox-state";
import { failedPrecondition, unavailable } from "../errdefs";

export interface PodSandboxOptions {
  id: string;
  /** containerd's bundle for the sandbox (no config.json in it). */
  bundle: string;
  pod: PodConfig;
  /** The pod's network namespace from CreateSandbox; empty for the node's network. */
  netns: string;
  sandbox: Sandbox;
  logger: Logger;
  /** shimlab's static sandbox-init program. */
  initProgram: string;
}

/** How long the pod's containers get to go on their own before SIGKILL when StopSandbox gives no timeout. */
const KILL_WAIT_MS = 10_000;

export class PodSandbox {
  readonly life: SandboxStateMachine;
  readonly createdAt = new Date();
  readonly files: PodFiles;
  private init: Container | null = null;
  private exit_: ExitInfo | null = null;
  private readonly waiters: ((e: ExitInfo) => void)[] = [];
  private readonly log: Logger;

  constructor(private readonly o: PodSandboxOptions) {
    this.life = new SandboxStateMachine(o.id);
    this.files = new PodFiles(o.sandbox.runDir, o.pod);
    this.log = o.logger.child({ sandbox: o.id });
  }

  get id(): string {
    return this.o.id;
  }

  get state(): SandboxLife {
    return this.life.state;
  }

  get sandbox(): Sandbox {
    return this.o.sandbox;
  }

  get pod(): PodConfig {
    return this.o.pod;
  }

  get netns(): string {
    return this.o.netns;
  }

  get bundle(): string {
    return this.o.bundle;
  }

  get exit(): ExitInfo | null {
    return this.exit_;
  }

  /** The pid containerd builds its namespace paths from: the agent's or the VM's, as for every task. */
  get pid(): number {
    return this.state === "ready" || this.state === "stopping" ? this.o.sandbox.pid : 0;
  }

  /** True for the sandbox's own init: its exit is the sandbox's. */
  isInit(c: Container): boolean {
    return c === this.init;
  }

  /**
   * StartSandbox: the agent (or VM) boots, the pod's files and shm are made,
   * and the process holding the pod's namespaces starts in the agent. Any
   * failure takes everything down again and leaves the sandbox stopped.
   */
  async start(): Promise<void> {
    this.life.transition("start");
    try {
      await this.files.write();
      await this.o.sandbox.start();
      const rootfs = writeInitRootfs(this.o.sandbox.runDir, this.o.initProgram);
      const spec = sandboxInitSpec(this.o.pod, { sandboxId: this.id, netns: this.o.netns || undefined, rootfs, ownOomScoreAdj: ownOomScoreAdj() });
      const init = await this.o.sandbox.createContainer({
        id: this.id,
        bundle: this.o.bundle,
        spec,
        type: "pod_sandbox",
        rootfs: [],
        stdio: { stdin: "", stdout: "", stderr: "", terminal: false },
        io: NULL_IO,
      });
      this.init = init;
      await init.start();
    } catch (e) {
      this.log.error("sandbox start failed", { error: (e as Error).message });
      // The agent's own connection error ("ttrpc: closed") would read as containerd's connection
      // to this shim failing: say what died. The class stays Unavailable, as for a lost agent.
      const reason = this.o.sandbox.state === "lost" ? this.o.sandbox.lostReason : null;
      await this.teardown();
      if (this.life.state === "starting") this.life.transition("stopped");
      this.recordExit(this.init?.init.exit?.status ?? 255);
      if (reason) throw unavailable(`sandbox ${this.id}: its agent went away during StartSandbox (${reason})`);
      throw e;
    }
    this.life.transition("started");
    this.log.info("sandbox started", { pid: this.pid, init: this.init.init.id });
  }

  /**
   * An exit of the sandbox's own process: containerd's StopSandbox killing
   * it, or its death otherwise (the agent or VM gone reports 255). As when a
   * pause container exits, the pod's containers go with it.
   */
  handleExit(c: Container, p: Process): boolean {
    if (c !== this.init || !p.isInit) return false;
    const status = p.exit?.status ?? 255;
    if (this.life.state === "ready") {
      this.log.warn("the sandbox's process exited: stopping its containers", { status });
      this.life.transition("exit");
      this.killContainers(os.constants.signals.SIGKILL).catch(() => {});
    } else if (this.life.state === "starting") {
      this.life.transition("exit");
    }
    this.recordExit(status);
    return true;
  }

  /**
   * StopSandbox: the pod's containers get SIGTERM and timeoutSecs to exit (none:
   * straight SIGKILL, as CRI stops what is left of a pod), then the sandbox's
   * process is killed, whose exit is the sandbox's, and the agent or VM goes.
   * The containers stay known until containerd deletes their tasks.
   */
  async stop(timeoutSecs = 0): Promise<void> {
    const from = this.life.state;
    this.life.transition("stop");
    if (from === "created") {
      this.recordExit(0);
      await this.teardown();
      return;
    }
    if (timeoutSecs > 0) {
      await this.killContainers(os.constants.signals.SIGTERM);
      await this.containersExited(timeoutSecs * 1000);
    }
    await this.killContainers(os.constants.signals.SIGKILL);
    await this.containersExited(KILL_WAIT_MS);
    const init = this.init;
    if (init && !init.init.exit) {
      await init.kill("", os.constants.signals.SIGKILL, false).catch((e) => this.log.warn("killing the sandbox's process failed", { error: (e as Error).message }));
      await Promise.race([init.init.wait(), new Promise((r) => setTimeout(r, KILL_WAIT_MS))]);
    }
    await this.teardown();
    // An init that never told its exit (the agent went first) ended unknown, as Kata reports it.
    this.recordExit(init?.init.exit?.status ?? 255);
    this.life.transition("stopped");
  }

  /** Settles with the sandbox's exit, at once when it has exited. */
  wait(): Promise<ExitInfo> {
    if (this.exit_) return Promise.resolve(this.exit_);
    return new Promise((r) => this.waiters.push(r));
  }

  /** Whether the agent answers a health check within timeoutMs. */
  async ping(timeoutMs = 5_000): Promise<void> {
    if (this.life.state !== "ready") throw unavailable(`sandbox ${this.id} is ${this.life.state}: nothing answers`);
    const client = this.o.sandbox.agentClient;
    if (!client || client.closed) throw unavailable(`sandbox ${this.id} lost its agent`);
    const r = await client.health.Check({ service: "" }, { timeoutMs });
    if (r.status !== 1) throw unavailable(`sandbox ${this.id}'s agent is not serving (status ${r.status})`);
  }

  /** ShutdownSandbox: stops what still runs; the shim may then exit. */
  async shutdown(appContainers: string[]): Promise<void> {
    if (appContainers.length) throw failedPrecondition(`sandbox ${this.id} still has containers: ${appContainers.join(", ")}`);
    const s = this.life.state;
    if (s === "ready") await this.stop();
    else if (s === "starting" || s === "stopping") throw failedPrecondition(`cannot shut down sandbox ${this.id} while it is ${s}`);
    else if (s === "created") this.life.transition("stop");
    // A sandbox that exited on its own still holds its agent or VM until now.
    await this.teardown();
    this.recordExit(this.exit_?.status ?? 0);
    this.life.transition("shutdown");
  }

  private recordExit(status: number): void {
    if (this.exit_) return;
    this.exit_ = { status, exitedAt: new Date() };
    for (const w of this.waiters.splice(0)) w(this.exit_);
  }

  private appContainers(): Container[] {
    return [...this.o.sandbox.containers.values()].filter((c) => c !== this.init);
  }

  private async killContainers(signal: number): Promise<void> {
    for (const c of this.appContainers()) {
      if (!c.state.can("kill")) continue;
      await c.kill("", signal, true).catch((e) => this.log.warn("signalling a container of the sandbox failed", { container: c.id, error: (e as Error).message }));
    }
  }

  private async containersExited(ms: number): Promise<void> {
    const live = this.appContainers().filter((c) => c.state.can("kill"));
    if (!live.length) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(live.map((c) => c.init.wait())), new Promise((r) => (t = setTimeout(r, ms)))]);
    clearTimeout(t);
  }

  private async teardown(): Promise<void> {
    // The shm is ours: unmounted before the sandbox removes its run dir.
    await this.files.release().catch((e) => this.log.error("unmounting the pod's shm failed", { error: (e as Error).message }));
    await this.o.sandbox.stop();
  }
}
