// containerd.task.v2.Task: what containerd asks of the shim, answered with
// runc's shim's semantics on top of the pod (sandbox, containers, processes)
// that forwards to the kata agent.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Task } from "../gen/containerd.task.v2";
import type * as t from "../gen/containerd.task.v2";
import { Status } from "../gen/containerd.v1.types";
import * as ev from "../gen/containerd.events";
import { ProcessDetails } from "../gen/containerd.runc.v1";
import { Options as RuntimeOptions } from "../gen/runtimeoptions.v1";
import type { ServiceImpl } from "../ttrpc/service";
import { alreadyExists, failedPrecondition, invalidArgument, notFound, notImplemented } from "../errdefs";
import type { CallContext } from "../proto/message";
import type { OciLinuxResources, OciProcess } from "../oci/spec";
import type { Logger } from "../util/logger";
import { GO_ZERO_TIME, timestampOf } from "../util/time";
import { Sandbox } from "../pod/sandbox";
import type { PodSandbox } from "../pod/pod-sandbox";
import type { Container } from "../pod/container";
import type { Process, ProcessIO, StdioPaths } from "../pod/process";
import { NULL_IO } from "../pod/process";
import { managedByCrio, placement } from "../pod/container-type";
import { readBundleSpec } from "./bundle";
import { validateExecId, validateId } from "./identifiers";
import { openIO, type IoOwner } from "./io";
import { EventOrdering } from "./ordering";
import type { EventSink } from "./publisher";
import { statsToMetrics } from "./metrics";
import { sandboxRunDir } from "../hypervisor/rundir";
import type { ShimConfig } from "./config";
import { loadConfig } from "./config";

const OCI_PROCESS_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";

export interface TaskServiceOptions {
  namespace: string;
  /** The id the shim was started for (the sandbox, or the first container). */
  shimId: string;
  events: EventSink;
  logger: Logger;
  config: ShimConfig;
  /** Asked to exit: no task is left and containerd called Shutdown. */
  onShutdown: () => void;
  /** Opens client stdio; tests and fault injection can swap it. */
  openIO?: (paths: StdioPaths, owner: IoOwner) => ProcessIO;
}

/** A process of a paused container runs, frozen: runc's shim says PAUSED of it, init or exec. */
function statusOf(p: Process, c: Container): number {
  switch (p.status) {
    case "created":
      return Status.CREATED;
    case "running":
      return c.state.status === "paused" ? Status.PAUSED : Status.RUNNING;
    case "stopped":
      return Status.STOPPED;
    default:
      return Status.UNKNOWN;
  }
}

export class TaskService {
  private sandbox: Sandbox | null = null;
  /** Set when containerd's Sandbox API, not a pause task, made the sandbox. */
  private pod: PodSandbox | null = null;
  private readonly ordering: EventOrdering;
  private readonly log: Logger;
  private shuttingDown = false;

  constructor(private readonly o: TaskServiceOptions) {
    this.log = o.logger;
    this.ordering = new EventOrdering({
      publishExit: (cid, execId) => {
        const c = this.task(cid);
        if (!c) return;
        const p = execId ? c.execs.get(execId) : c.init;
        if (!p?.exit) return;
        o.events.publish("/tasks/exit", ev.TaskExit, {
          containerId: cid,
          id: p.id,
          pid: p.pid,
          exitStatus: p.exit.status,
          exitedAt: timestampOf(p.exit.exitedAt),
        });
      },
    });
  }

  get sandboxHandle(): Sandbox | null {
    return this.sandbox;
  }

  get taskCount(): number {
    return this.tasks().length;
  }

  /** The tasks containerd created: the sandbox's containers, but for a Sandbox API pod's own init, which is no task. */
  private tasks(): Container[] {
    return this.sandbox ? [...this.sandbox.containers.values()].filter((c) => !this.pod?.isInit(c)) : [];
  }

  private task(id: string): Container | undefined {
    const c = this.sandbox?.containers.get(id);
    return c && !this.pod?.isInit(c) ? c : undefined;
  }

  private container(id: string): Container {
    const c = this.task(id);
    if (!c) throw notFound("container not created");
    return c;
  }

  /** The client's streams, once they can take output. */
  private async io(paths: StdioPaths, ownerId: string): Promise<ProcessIO> {
    if (!paths.stdin && !paths.stdout && !paths.stderr) return NULL_IO;
    const io = (this.o.openIO ?? openIO)(paths, { id: ownerId, namespace: this.o.namespace });
    try {
      await io.ready;
    } catch (e) {
      io.close();
      throw e;
    }
    return io;
  }

  private exitedAt(p: Process) {
    return p.exit ? timestampOf(p.exit.exitedAt) : GO_ZERO_TIME;
  }

  readonly impl: ServiceImpl<typeof Task> = {
    State: (req) => {
      const c = this.container(req.id);
      const p = c.process(req.execId);
      return {
        id: p.id,
        bundle: c.bundle,
        pid: p.pid,
        status: statusOf(p, c),
        stdin: p.stdio.stdin,
        stdout: p.stdio.stdout,
        stderr: p.stdio.stderr,
        terminal: p.stdio.terminal,
        exitStatus: p.exit?.status ?? 0,
        exitedAt: this.exitedAt(p),
      };
    },

    Create: (req, ctx) => this.create(req, ctx),

    Start: async (req) => {
      const c = this.container(req.id);
      return c.lock.run(async () => {
        if (!req.execId) {
          const p = await c.start();
          this.o.events.publish("/tasks/start", ev.TaskStart, { containerId: c.id, pid: p.pid });
          this.ordering.started(c.id, "");
          return { pid: p.pid };
        }
        const p = c.process(req.execId);
        if (c.init.status === "stopped") throw failedPrecondition(`container ${c.id} has exited: cannot start exec ${req.execId}`);
        await c.startExec(p);
        this.o.events.publish("/tasks/exec-started", ev.TaskExecStarted, { containerId: c.id, execId: p.execId, pid: p.pid });
        this.ordering.started(c.id, p.execId);
        return { pid: p.pid };
      });
    },

    Delete: async (req) => {
      const c = this.container(req.id);
      if (req.execId) {
        // The process table refuses a running exec ("cannot delete a running process").
        const p = c.deleteExec(req.execId);
        this.ordering.execGone(c.id, req.execId);
        return { pid: p.pid, exitStatus: p.exit?.status ?? 0, exitedAt: this.exitedAt(p) };
      }
      return c.lock.run(async () => {
        if (c.isSandbox && this.sandbox && c.id === this.sandbox.id) {
          const others = this.taskIds.filter((id) => id !== c.id);
          if (others.length) throw failedPrecondition(`sandbox ${c.id} still has containers: ${others.join(", ")}`);
        }
        const p = await c.delete();
        this.sandbox?.remove(c.id);
        this.ordering.forget(c.id);
        this.o.events.publish("/tasks/delete", ev.TaskDelete, {
          containerId: c.id,
          pid: p.pid,
          exitStatus: p.exit?.status ?? 0,
          exitedAt: this.exitedAt(p),
        });
        if (this.sandbox && c.id === this.sandbox.id) {
          // The sandbox container goes last: the VM (or agent) goes with it, after this answer, as runc's shim
          // exits after its Shutdown's. The daemon's exit waits for it (stopping()), its socket served till then,
          // so that `delete` leaves the cleanup to it (src/shim/stopping.ts).
          this.sandbox.stop().catch((e) => this.log.error("stopping the sandbox failed", { error: (e as Error).message }));
        }
        return { pid: p.pid, exitStatus: p.exit?.status ?? 0, exitedAt: this.exitedAt(p) };
      });
    },

    Pids: (req) => {
      const c = this.container(req.id);
      // Guest pids mean nothing on the host: like Kata, the one pid there is is the VM's (or the agent's).
      const procs: t.PidsResponse["processes"] = [{ pid: c.init.pid, info: undefined }];
      for (const e of c.execs.values()) {
        if (e.status === "running") {
          procs.push({ pid: e.pid, info: { typeUrl: ProcessDetails.typeName, value: ProcessDetails.encode({ execId: e.execId }) } });
        }
      }
      return { processes: procs };
    },

    Pause: async (req) => {
      const c = this.container(req.id);
      await c.lock.run(() => c.pause());
      this.o.events.publish("/tasks/paused", ev.TaskPaused, { containerId: c.id });
      return {};
    },

    Resume: async (req) => {
      const c = this.container(req.id);
      await c.lock.run(() => c.resume());
      this.o.events.publish("/tasks/resumed", ev.TaskResumed, { containerId: c.id });
      return {};
    },

    Checkpoint: (req) => {
      this.container(req.id);
      throw notImplemented("checkpoint is not supported by shimlab: like Kata Containers, it cannot checkpoint a sandboxed container");
    },

    Kill: async (req) => {
      const c = this.container(req.id);
      if (req.execId) validateExecId(req.execId);
      const p = c.process(req.execId);
      if (p.isInit && req.all && p.status === "stopped") return {}; // runc: kill --all after exit is OK
      await c.kill(req.execId, req.signal, req.all);
      return {};
    },

    Exec: async (req) => {
      const c = this.container(req.id);
      validateExecId(req.execId);
      if (c.execs.has(req.execId)) throw alreadyExists(`id ${req.execId}`);
      if (!req.spec) throw invalidArgument("exec has no process spec");
      let spec: OciProcess;
      try {
        spec = JSON.parse(req.spec.value.toString("utf8"));
      } catch (e) {
        throw invalidArgument(`exec spec (${req.spec.typeUrl}) is not OCI process JSON: ${(e as Error).message}`);
      }
      if (req.spec.typeUrl && !req.spec.typeUrl.endsWith("/Process")) this.log.warn("unexpected exec spec type", { typeUrl: req.spec.typeUrl, want: OCI_PROCESS_URL });
      if (!Array.isArray(spec.args) || !spec.args.length) throw invalidArgument("exec process has no args");
      spec.terminal = req.terminal;
      const stdio = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal };
      const io = await this.io(stdio, req.execId);
      try {
        c.addExec(req.execId, spec, stdio, io);
      } catch (e) {
        io.close();
        throw e;
      }
      this.o.events.publish("/tasks/exec-added", ev.TaskExecAdded, { containerId: c.id, execId: req.execId });
      return {};
    },

    ResizePty: async (req) => {
      const c = this.container(req.id);
      const p = c.process(req.execId);
      if (!p.stdio.terminal) throw failedPrecondition(`process ${p.id} has no terminal`);
      if (p.status === "stopped") throw failedPrecondition("cannot resize a stopped container");
      if (p.status !== "running") throw failedPrecondition(`process ${p.id} is ${p.status}`);
      await this.sandboxOf().agent.TtyWinResize({ containerId: c.id, execId: p.execId, row: req.height, column: req.width });
      return {};
    },

    CloseIO: async (req) => {
      const c = this.container(req.id);
      const p = c.process(req.execId);
      if (req.stdin) await p.closeStdin(this.sandboxOf().agent, p.execId);
      return {};
    },

    Update: async (req) => {
      const c = this.container(req.id);
      if (!req.resources) throw invalidArgument("update has no resources");
      let r: OciLinuxResources;
      try {
        r = JSON.parse(req.resources.value.toString("utf8"));
      } catch (e) {
        throw invalidArgument(`resources are not OCI LinuxResources JSON: ${(e as Error).message}`);
      }
      await c.update(r);
      return {};
    },

    Wait: async (req, ctx) => {
      const c = this.container(req.id);
      const p = c.process(req.execId);
      const exit = await Promise.race([
        p.wait(),
        new Promise<never>((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true })),
      ]);
      return { exitStatus: exit.status, exitedAt: timestampOf(exit.exitedAt) };
    },

    Stats: async (req) => {
      const c = this.container(req.id);
      const s = await c.stats();
      // cgroups v1's codecs are loaded by the first Stats: ctr's pods never ask, a CRI's do every few seconds.
      const { Metrics } = await import("../gen/io.containerd.cgroups.v1");
      return { stats: { typeUrl: Metrics.typeName, value: Metrics.encode(statsToMetrics(s)) } };
    },

    Connect: (req) => {
      const c = this.task(req.id);
      // containerd 2.x reconnects to a sandbox's shim after a restart by asking Connect for the sandbox's id.
      const pid = c?.init.pid ?? (this.pod && req.id === this.pod.id ? this.pod.pid : 0);
      return { shimPid: process.pid, taskPid: pid, version: "" };
    },

    Shutdown: () => {
      // A Sandbox API sandbox outlives its tasks (a pod between containers): ShutdownSandbox ends the shim.
      if (this.taskCount > 0 || this.shuttingDown || (this.pod && this.pod.state !== "shutdown")) return {};
      this.shuttingDown = true;
      setImmediate(() => this.o.onShutdown());
      return {};
    },
  };

  /**
   * The pause container is gone: as Kata stops the whole sandbox (VM and all)
   * when it exits, the pod's containers are killed too. Then containerd sees
   * them exit and deletes them, and the sandbox task, which cannot be deleted
   * before them, can go.
   */
  private sandboxExited(sandboxId: string): void {
    for (const c of this.tasks()) {
      if (c.id === sandboxId || !c.state.can("kill")) continue;
      this.log.warn("the pod's sandbox exited: killing its container", { container: c.id });
      c.kill("", os.constants.signals.SIGKILL, true).catch((e) => this.log.warn("killing a container of an exited sandbox failed", { container: c.id, error: (e as Error).message }));
    }
  }

  /**
   * The pod's Sandbox (agent or VM, not started yet), with the hooks that
   * turn its processes' exits and OOMs into task events. pauseTask names the
   * pause container whose exit ends the pod, when a pause container opens it.
   */
  openSandbox(o: { id: string; config: ShimConfig; hostname?: string; annotations?: Record<string, string>; netns?: string; pauseTask?: string }): Sandbox {
    if (this.sandbox) throw failedPrecondition(`this shim already serves sandbox ${this.sandbox.id}`);
    this.sandbox = new Sandbox({
      id: o.id,
      namespace: this.o.namespace,
      runDir: sandboxRunDir(this.o.namespace, o.id),
      hypervisor: o.config.hypervisor(),
      logger: this.log,
      hostname: o.hostname,
      annotations: o.annotations,
      netns: o.netns,
      dial: { timeoutMs: o.config.dialTimeoutMs },
      hooks: {
        onExit: (c, p) => {
          this.ordering.exited(c.id, p.execId);
          if (this.pod?.handleExit(c, p)) return;
          if (p.isInit && o.pauseTask && c.id === o.pauseTask) this.sandboxExited(c.id);
        },
        onOom: (cid) => {
          const c = this.task(cid);
          if (!c) return;
          // CRI-O reads no events: it learns of an OOM kill from a file `oom` in the bundle, which
          // Kata's shim writes for CRI-O's containers (watchOOMEvents) before publishing TaskOOM.
          if (managedByCrio(c.spec.annotations)) {
            try {
              fs.closeSync(fs.openSync(path.join(c.bundle, "oom"), "a"));
            } catch (e) {
              this.log.warn("cannot write the oom file CRI-O reads", { container: cid, error: (e as Error).message });
            }
          }
          this.o.events.publish("/tasks/oom", ev.TaskOOM, { containerId: cid });
        },
        onLost: (reason) => this.log.error("sandbox lost", { reason }),
      },
    });
    return this.sandbox;
  }

  /** The sandbox containerd's Sandbox API drives (sandbox-service.ts): its containers join it, and the shim outlives their tasks. */
  attachPod(pod: PodSandbox): void {
    if (this.sandbox !== pod.sandbox) throw failedPrecondition(`sandbox ${pod.id} was not opened by this shim`);
    this.pod = pod;
  }

  /** Ids of the tasks containerd has not deleted. */
  get taskIds(): string[] {
    return this.tasks().map((c) => c.id);
  }

  private sandboxOf(): Sandbox {
    if (!this.sandbox) throw failedPrecondition("no sandbox");
    return this.sandbox;
  }

  private async create(req: t.CreateTaskRequest, _ctx: CallContext): Promise<t.CreateTaskResponseInit> {
    validateId("id", req.id);
    if (this.task(req.id)) throw alreadyExists(`container ${req.id}`);
    if (req.checkpoint) throw notImplemented("restore from checkpoint is not supported by shimlab");
    const bundle = req.bundle || process.cwd();
    let spec = readBundleSpec(bundle);
    const where = placement(req.id, spec.annotations);
    if (where.type === "pod_container") {
      if (!this.sandbox || this.sandbox.id !== where.sandboxId) {
        throw failedPrecondition(`BUG: Cannot start the container, since the sandbox hasn't been created (container ${req.id}, sandbox ${where.sandboxId})`);
      }
      if (this.pod) {
        if (this.pod.state !== "ready") throw failedPrecondition(`sandbox ${this.pod.id} is ${this.pod.state}: cannot create container ${req.id}`);
        // No pause container carries the pod's files: the sandbox mounts them, as CRI would have.
        spec = this.pod.files.apply(spec);
      }
    } else {
      if (this.sandbox) throw failedPrecondition(`cannot create another sandbox in sandbox: ${this.sandbox.id}`);
      validateId("sandbox id", where.sandboxId);
      const config = this.configFor(req);
      const hypervisor = config.hypervisor();
      // What the sandbox's driver cannot give (a VM and the host's namespaces) fails here, before a VM boots.
      hypervisor.admit?.(spec);
      if (config !== this.o.config) {
        // An agent booted ahead (early-agent.ts) was made for the daemon's own configuration, not this one.
        await this.o.config.hypervisor().release();
      }
      const sandbox = this.openSandbox({
        id: where.sandboxId,
        config,
        hostname: spec.hostname,
        annotations: spec.annotations,
        netns: spec.linux?.namespaces?.find((n) => n.type === "network")?.path || undefined,
        pauseTask: where.type === "pod_sandbox" ? where.sandboxId : undefined,
      });
      try {
        await sandbox.start();
      } catch (e) {
        this.sandbox = null;
        throw e;
      }
    }
    const sandbox = this.sandboxOf();
    const stdio = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal };
    const io = await this.io(stdio, req.id);
    let c: Container;
    try {
      c = await sandbox.createContainer({
        id: req.id,
        bundle,
        spec,
        type: where.type,
        rootfs: req.rootfs.map((m) => ({ type: m.type, source: m.source, target: m.target, options: m.options })),
        stdio,
        io,
      });
    } catch (e) {
      io.close();
      if (where.type !== "pod_container" && this.sandbox) {
        await this.sandbox.stop().catch(() => {});
        this.sandbox = null;
      }
      throw e;
    }
    this.o.events.publish("/tasks/create", ev.TaskCreate, {
      containerId: c.id,
      bundle,
      rootfs: req.rootfs,
      io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      checkpoint: req.checkpoint,
      pid: c.init.pid,
    });
    return { pid: c.init.pid };
  }

  /** The shim's configuration: containerd's runtime options (ConfigPath) first, then SHIMLAB_CONFIG. */
  private configFor(req: t.CreateTaskRequest): ShimConfig {
    if (req.options && req.options.typeUrl === RuntimeOptions.typeName) {
      const opts = RuntimeOptions.decode(req.options.value);
      // The file the daemon booted on (`start` passed it on): the same config, and the agent it booted ahead.
      if (opts.configPath && this.o.config.source !== "defaults" && path.resolve(opts.configPath) === path.resolve(this.o.config.source)) return this.o.config;
      if (opts.configPath) return loadConfig(opts.configPath, this.o.config.env);
    }
    return this.o.config;
  }

  /** The sandbox's stop under way (it never rejects), or null: what the daemon waits for before it exits. */
  stopping(): Promise<void> | null {
    return this.sandbox?.stopping() ?? null;
  }

  /** Crash paths: unmount what we mounted and stop the VM; nothing may be left behind. */
  async cleanupAll(): Promise<void> {
    for (const c of this.tasks()) await c.forceCleanup();
    await this.pod?.files.release().catch(() => {});
    await this.sandbox?.stop();
  }

  signalName(sig: number): string {
    return Object.entries(os.constants.signals).find(([, v]) => v === sig)?.[0] ?? String(sig);
  }
}
