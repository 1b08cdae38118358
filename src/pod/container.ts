// A container in a pod: its init, its execs, its rootfs, forwarded to the agent.
import type { ShareOptions } from "../hypervisor/types";
import os from "node:os";
import path from "node:path";
import type { AgentApi } from "../agent/client";
import { processToGrpc, resourcesToGrpc, specToGrpc, takePidNamespace } from "../agent/spec";
import type { StatsContainerResponse } from "../gen/grpc";
import type { OciLinuxResources, OciProcess, OciSpec } from "../oci/spec";
import { alreadyExists, failedPrecondition, isNotFound, isUnavailable, notFound } from "../errdefs";
import type { Logger } from "../util/logger";
import { Mutex } from "../util/mutex";
import type { ContainerType } from "./container-type";
import { mountAll, unmountAll, type MountSpec } from "./mount";
import { Process, type ProcessIO, type StdioPaths } from "./process";
import { ContainerStateMachine } from "./state";
import { guestMounts } from "./guest-mounts";

export interface ContainerHost {
  readonly agent: AgentApi;
  readonly pid: number;
  readonly guest: boolean;
  readonly sandboxId: string;
  shareRootfs(containerId: string, hostPath: string, o?: ShareOptions): Promise<string>;
  unshareRootfs(containerId: string): Promise<void>;
  logger: Logger;
  processExited(c: Container, p: Process): void;
}

export interface CreateOptions {
  id: string;
  bundle: string;
  spec: OciSpec;
  type: ContainerType;
  rootfs: MountSpec[];
  stdio: StdioPaths;
  io: ProcessIO;
}

export class Container {
  readonly init: Process;
  readonly execs = new Map<string, Process>();
  readonly lock = new Mutex();
  readonly state: ContainerStateMachine;
  private mounted = false;
  /** Host paths shared into the guest for this container's bind mounts (VM sandboxes). */
  private readonly shares: string[] = [];

  private constructor(
    readonly id: string,
    readonly bundle: string,
    readonly spec: OciSpec,
    readonly type: ContainerType,
    readonly rootfsMounts: MountSpec[],
    private readonly host: ContainerHost,
    stdio: StdioPaths,
    io: ProcessIO,
  ) {
    this.init = new Process(id, "", stdio, io, host.logger);
    this.init.pid = host.pid;
    this.state = new ContainerStateMachine(id);
    // The init's start, exit and delete are the container's: this machine only follows them.
    this.init.state.onChange((_from, _to, op) => this.state.transition(op));
  }

  get isSandbox(): boolean {
    return this.type !== "pod_container";
  }

  /** Mounts the rootfs, shares it with the agent and creates the container there (the init is created, not started). */
  static async create(o: CreateOptions, host: ContainerHost): Promise<Container> {
    const c = new Container(o.id, o.bundle, o.spec, o.type, o.rootfs, host, o.stdio, o.io);
    let hostRoot: string;
    if (o.rootfs.length) {
      hostRoot = path.join(o.bundle, "rootfs");
      await mountAll(o.rootfs, hostRoot);
      c.mounted = true;
    } else {
      const r = o.spec.root?.path;
      if (!r) throw failedPrecondition(`container ${o.id}: no rootfs mounts and no root.path in config.json`);
      hostRoot = path.isAbsolute(r) ? r : path.join(o.bundle, r);
    }
    try {
      const rootPath = await host.shareRootfs(o.id, hostRoot);
      let oci = o.spec;
      if (host.guest) {
        const g = await guestMounts(o.id, o.spec, host);
        c.shares.push(...g.shares);
        oci = g.spec;
      }
      const spec = specToGrpc(oci, { guest: host.guest, rootPath });
      const sandboxPidns = takePidNamespace(spec);
      await host.agent.CreateContainer({ containerId: o.id, execId: o.id, OCI: spec, sandboxPidns });
    } catch (e) {
      for (const k of c.shares) await host.unshareRootfs(k).catch(() => {});
      await host.unshareRootfs(o.id).catch(() => {});
      if (c.mounted) await unmountAll(hostRoot).catch(() => {});
      c.init.closeIo();
      throw e;
    }
    return c;
  }

  process(execId: string): Process {
    if (!execId) return this.init;
    const p = this.execs.get(execId);
    if (!p) throw notFound(`process does not exist ${execId}`);
    return p;
  }

  async start(): Promise<Process> {
    this.init.state.check("start");
    await this.host.agent.StartContainer({ containerId: this.id });
    this.init.state.transition("start");
    this.watch(this.init);
    this.init.beginIo(this.host.agent, "");
    return this.init;
  }

  addExec(execId: string, spec: OciProcess, stdio: StdioPaths, io: ProcessIO): Process {
    if (this.execs.has(execId)) throw alreadyExists(`id ${execId}`);
    this.state.check("exec");
    const p = new Process(this.id, execId, stdio, io, this.host.logger);
    p.spec = spec;
    this.execs.set(execId, p);
    return p;
  }

  async startExec(p: Process): Promise<void> {
    p.state.check("start");
    if (this.state.status !== "running") throw failedPrecondition(`container ${this.id} is ${this.state.status}: cannot start exec ${p.execId}`);
    const spec = p.spec!;
    await this.host.agent.ExecProcess({ containerId: this.id, execId: p.execId, process: processToGrpc(spec) });
    p.pid = this.host.pid;
    p.state.transition("start");
    this.watch(p);
    if (spec.terminal && spec.consoleSize) {
      await this.host.agent.TtyWinResize({ containerId: this.id, execId: p.execId, row: spec.consoleSize.height, column: spec.consoleSize.width }).catch(() => {});
    }
    p.beginIo(this.host.agent, p.execId);
  }

  private watch(p: Process): void {
    p.onExit = () => this.host.processExited(this, p);
  }

  async kill(execId: string, signal: number, all: boolean): Promise<void> {
    const p = this.process(execId);
    if (p.isInit && p.status === "created") {
      // Never started: only the runtime's waiting init exists (runc's, a Go process). SIGKILL
      // and SIGTERM end it, and the task with it, as under runc's shim (STOPPED, 128+signal,
      // Wait returns): CRI-O stops a created container with SIGTERM and waits for its exit
      // up to the call's deadline. Other signals change nothing.
      if (signal === os.constants.signals.SIGKILL || signal === os.constants.signals.SIGTERM) {
        await this.host.agent.SignalProcess({ containerId: this.id, execId: "", signal: os.constants.signals.SIGKILL }).catch(() => {});
        p.setExited(128 + signal);
      }
      return;
    }
    if (p.isInit && all) {
      // ctr task kill -a: every process of the container, whatever the signal.
      if (signal === os.constants.signals.SIGKILL) {
        await this.host.agent.SignalProcess({ containerId: this.id, execId: "", signal });
        return;
      }
      const targets = [p, ...this.execs.values()].filter((x) => x.status === "running");
      for (const t of targets) await this.host.agent.SignalProcess({ containerId: this.id, execId: t.execId, signal }).catch(() => {});
      return;
    }
    if (!p.isInit && p.status === "created") throw failedPrecondition("process not created");
    p.state.check("kill");
    await this.host.agent.SignalProcess({ containerId: this.id, execId: p.execId, signal });
  }

  async pause(): Promise<void> {
    this.state.check("pause");
    await this.host.agent.PauseContainer({ containerId: this.id });
    this.state.transition("pause");
  }

  async resume(): Promise<void> {
    this.state.check("resume");
    await this.host.agent.ResumeContainer({ containerId: this.id });
    // The init may have exited while the agent thawed it: stopped is then the state, not running.
    if (this.state.can("resume")) this.state.transition("resume");
  }

  async stats(): Promise<StatsContainerResponse> {
    // Created, running or exited, the container has its cgroup until it is deleted, and runc's shim
    // reads it; CRI-O asks for the stats of every container it still believes running, and one
    // refusal there crashes it (a nil entry in its ListPodSandboxMetrics answer). The agent answers
    // for as long as it holds the container.
    return this.host.agent.StatsContainer({ containerId: this.id });
  }

  async update(resources: OciLinuxResources): Promise<void> {
    this.state.check("update");
    await this.host.agent.UpdateContainer({ containerId: this.id, resources: resourcesToGrpc(resources) });
  }

  /** Deletes an exec: it must not be running. */
  deleteExec(execId: string): Process {
    const p = this.process(execId);
    p.state.transition("delete");
    this.execs.delete(execId);
    p.closeIo();
    return p;
  }

  /**
   * Deletes the container: its init must have exited (or never started).
   * Removes it from the agent and unmounts its rootfs.
   */
  async delete(): Promise<Process> {
    // The container first: a paused one is refused as paused, though its init is still "running".
    this.state.check("delete");
    this.init.state.check("delete");
    await this.stopExecs();
    try {
      await this.host.agent.RemoveContainer({ containerId: this.id, timeout: 10 });
    } catch (e) {
      // The agent forgot it (or is gone): there is nothing left to remove there.
      if (!isNotFound(e) && !isUnavailable(e)) throw e;
    }
    for (const k of this.shares.splice(0)) await this.host.unshareRootfs(k).catch(() => {});
    await this.host.unshareRootfs(this.id).catch(() => {});
    if (this.mounted) {
      await unmountAll(path.join(this.bundle, "rootfs"));
      this.mounted = false;
    }
    this.init.state.transition("delete");
    this.init.closeIo();
    for (const e of this.execs.values()) e.closeIo();
    return this.init;
  }

  /**
   * The init has stopped, so its execs are dying with it (their exits are in flight) or outlive it
   * in a shared pid namespace. Kata's DeleteContainer stops what is left, and runc's shim deletes the
   * init regardless: SIGKILL them and wait for their exits (published before the TaskDelete), rather
   * than refuse and leave a shim that containerd's Shutdown can no longer end.
   */
  private async stopExecs(timeoutMs = 5_000): Promise<void> {
    const live = () => [...this.execs.values()].filter((e) => e.status === "running");
    if (!live().length) return;
    for (const e of live()) await this.host.agent.SignalProcess({ containerId: this.id, execId: e.execId, signal: os.constants.signals.SIGKILL }).catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(live().map((e) => e.wait())), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    const left = live();
    if (left.length) throw failedPrecondition(`exec ${left[0].execId} of ${this.id} is still ${left[0].status} after SIGKILL`);
  }

  /** Releases the rootfs after the agent is gone (crash paths). */
  async forceCleanup(): Promise<void> {
    if (this.mounted) await unmountAll(path.join(this.bundle, "rootfs")).catch(() => {});
    this.mounted = false;
    this.init.closeIo();
    for (const e of this.execs.values()) e.closeIo();
  }
}
