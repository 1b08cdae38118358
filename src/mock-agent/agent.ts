// The mock agent's kata API: a stateful stand-in for kata-agent that runs
// containers for real (runc) or, without isolation, as host processes.
//
// Semantics follow the Rust kata-agent where the shim depends on them:
// one sandbox per agent; exec_id "" (or the container id) names the init
// process; WaitProcess reaps; an empty ReadStdout means end of stream, which
// comes at most 500 ms after the process exits; SIGKILL with exec_id "" kills
// every process of the container.
import { cgroupParent } from "../util/cgroup";
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import type { AgentService, Health } from "../gen/grpc";
import type { ServiceImpl } from "../ttrpc/service";
import { alreadyExists, deadlineExceeded, ErrdefsError, failedPrecondition, invalidArgument, notFound, notImplemented } from "../errdefs";
import type { Logger } from "../util/logger";
import { OutputBuffer } from "./output";
import { processFromGrpc, resourcesFromGrpc, specFromGrpc } from "./oci";
import type { Runtime, RuntimeProcess } from "./runtime/types";
import { mountStorage } from "./storage";
import { allowsEveryDevice, listDevices, withGuestDevices } from "./devices";
import { hugepageSizes, splitHugepageLimits } from "./hugepages";
import { canLowerOomScore, clampOomScoreAdj, ownOomScoreAdj } from "./oom-score";
import type { OciLinuxResources } from "../oci/spec";
import type { Reaper } from "./reaper";
import type { GuestNetwork } from "./network";

export const AGENT_VERSION = "shimlab-mock-agent 0.1.0";
/** After a process exits, its output is drained for at most this long, then end of stream (as kata-agent). */
export const DRAIN_MS = 500;

type ContainerStatus = "created" | "running" | "paused" | "stopped";

class AgentProcess {
  rp: RuntimeProcess | null = null;
  readonly stdout = new OutputBuffer();
  readonly stderr = new OutputBuffer();
  status: number | undefined;
  reaped = false;
  private resolveExit!: (s: number) => void;
  readonly exited: Promise<number> = new Promise((r) => (this.resolveExit = r));
  pendingResize: { rows: number; cols: number } | null = null;

  constructor(
    readonly containerId: string,
    readonly execId: string,
    readonly terminal: boolean,
  ) {}

  attach(rp: RuntimeProcess, onExit: (status: number) => void): void {
    this.rp = rp;
    if (rp.stdout) this.stdout.attach(rp.stdout);
    else this.stdout.end();
    if (rp.stderr) this.stderr.attach(rp.stderr);
    else this.stderr.end();
    if (this.pendingResize) rp.resize(this.pendingResize.rows, this.pendingResize.cols);
    rp.exit.then(onExit);
  }

  /** Lets go of stdin once nobody can write to it: the container's end is gone, ours must go too. */
  closeStdin(): void {
    const stdin = this.rp?.stdin;
    if (stdin && !stdin.destroyed) stdin.destroy();
  }

  setExited(status: number): void {
    if (this.status !== undefined) return;
    this.status = status;
    this.resolveExit(status);
    // A grandchild may hold the pipe open: stop waiting for its EOF after the drain window.
    setTimeout(() => {
      this.stdout.end();
      this.stderr.end();
    }, DRAIN_MS).unref();
  }
}

class AgentContainer {
  status: ContainerStatus = "created";
  readonly execs = new Map<string, AgentProcess>();
  oomSeen = 0;

  constructor(
    readonly id: string,
    readonly init: AgentProcess,
    readonly initExecId: string,
    readonly dir: string,
  ) {}
}

/** Parent of every cgroup the agent makes: <parent>/<sandbox>/<container>. */
export { cgroupParent };

export interface MockAgentOptions {
  runtime: Runtime;
  stateDir: string;
  logger: Logger;
  /** Running as a VM's agent: CreateSandbox mounts storages and sets the hostname. */
  guest: boolean;
  /** The subreaper, when the runtime needs one: helper programs the agent runs must be known to it. */
  reaper?: Reaper | null;
  /** The guest's network (UpdateInterface etc.); null on the host, whose network is not the agent's to change. */
  network?: GuestNetwork | null;
  /** Called once DestroySandbox has answered: the agent's work is done. */
  onDestroyed: () => void;
}

export class MockAgent {
  private sandbox: { id: string; hostname: string; pidns: boolean } | null = null;
  private readonly containers = new Map<string, AgentContainer>();
  private readonly oomEvents: string[] = [];
  private oomWaiters: { resolve: (id: string) => void; reject: (e: Error) => void }[] = [];
  private oomTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: MockAgentOptions) {}

  get runtime(): Runtime {
    return this.o.runtime;
  }

  private container(id: string): AgentContainer {
    const c = this.containers.get(id);
    if (!c) throw notFound(`container ${id} not found`);
    return c;
  }

  /** "" and the container id both name the init process, as in kata-agent. */
  private process(containerId: string, execId: string): AgentProcess {
    const c = this.container(containerId);
    if (!execId || execId === containerId || execId === c.initExecId) {
      if (c.init.reaped) throw invalidArgument(`init process of ${containerId} was already waited for`);
      return c.init;
    }
    const p = c.execs.get(execId);
    if (!p) throw invalidArgument(`invalid exec id ${execId} in container ${containerId}`);
    return p;
  }

  private onExit(c: AgentContainer, p: AgentProcess, status: number): void {
    const isInit = p === c.init;
    if (isInit) {
      // OOM is checked before the exit is visible, so the shim publishes /tasks/oom before /tasks/exit.
      this.checkOom(c);
      c.status = "stopped";
      // Like the end of a pid namespace: what the init leaves behind goes with it.
      for (const e of c.execs.values()) if (e.status === undefined && e.rp) this.o.runtime.signal(c.id, e.rp, os.constants.signals.SIGKILL).catch(() => {});
    }
    this.o.logger.info("process exited", { container: c.id, exec: p.execId || undefined, status });
    p.setExited(status);
  }

  private checkOom(c: AgentContainer): void {
    const n = this.o.runtime.oomKills(c.id);
    // One event for the kills since the last look: a second one could only reach the shim (one
    // GetOOMEvent at a time) after the exit it must precede.
    if (c.oomSeen < n) {
      c.oomSeen = n;
      this.pushOom(c.id);
    }
  }

  private pushOom(containerId: string): void {
    if (this.oomEvents.includes(containerId)) return; // still unread: the same news
    const w = this.oomWaiters.shift();
    if (w) w.resolve(containerId);
    else this.oomEvents.push(containerId);
  }

  private watchOom(): void {
    if (this.oomTimer) return;
    this.oomTimer = setInterval(() => {
      for (const c of this.containers.values()) if (c.status === "running") this.checkOom(c);
    }, 500);
    this.oomTimer.unref();
  }

  readonly health: ServiceImpl<typeof Health> = {
    Check: () => ({ status: 1 }),
    Version: () => ({ grpcVersion: "0.0.1", agentVersion: AGENT_VERSION }),
  };

  readonly service: ServiceImpl<typeof AgentService> = {
    CreateSandbox: async (req) => {
      if (this.sandbox) throw alreadyExists(`sandbox ${this.sandbox.id} already created`);
      if (this.o.guest) {
        for (const s of req.storages) await mountStorage(s, this.o.logger, this.o.reaper ?? null);
        if (req.hostname) {
          try {
            fs.writeFileSync("/proc/sys/kernel/hostname", req.hostname);
          } catch (e) {
            this.o.logger.warn("cannot set hostname", { error: (e as Error).message });
          }
        }
      } else if (req.storages.length) {
        throw invalidArgument("this agent runs on the host: it cannot mount sandbox storages");
      }
      this.sandbox = { id: req.sandboxId, hostname: req.hostname, pidns: req.sandboxPidns };
      this.o.logger.info("sandbox created", { sandbox: req.sandboxId, runtime: this.o.runtime.name });
      this.watchOom();
      return {};
    },

    DestroySandbox: async () => {
      if (!this.sandbox) throw failedPrecondition("sandbox not created");
      for (const id of [...this.containers.keys()].reverse()) await this.removeContainer(id, 10);
      for (const w of this.oomWaiters) w.reject(new ErrdefsError("Unavailable", "sandbox destroyed"));
      this.oomWaiters = [];
      if (this.oomTimer) clearInterval(this.oomTimer);
      this.o.runtime.removeCgroup(`${cgroupParent()}/${this.sandbox.id}`);
      this.o.logger.info("sandbox destroyed", { sandbox: this.sandbox.id });
      this.sandbox = null;
      setImmediate(() => this.o.onDestroyed());
      return {};
    },

    CreateContainer: async (req) => {
      if (!this.sandbox) throw failedPrecondition("sandbox not created: call CreateSandbox first");
      if (!req.containerId) throw invalidArgument("container_id is empty");
      if (this.containers.has(req.containerId)) throw alreadyExists(`container ${req.containerId} already exists`);
      if (!req.OCI?.Process) throw invalidArgument("the OCI spec has no process");
      if (!req.OCI.Root?.Path) throw invalidArgument("the OCI spec has no root path");
      let spec = specFromGrpc(req.OCI);
      // Only a guest's devices are the agent's to give; on the host, the spec's list is the host's already.
      if (this.o.guest && this.o.runtime.isolated && allowsEveryDevice(spec)) spec = withGuestDevices(spec, listDevices());
      this.fitHugepages(req.containerId, spec.linux?.resources);
      this.fitOomScore(req.containerId, spec.process);
      const guestSysctls = this.o.network?.takeNetSysctls(spec) ?? [];
      if (spec.linux && this.o.runtime.isolated && this.o.guest) {
        // kata-agent's update_container_namespaces: the pid namespace is the
        // agent's call, not the spec's — the sandbox's when sandbox_pidns asks
        // for it (joined below), else a new one.
        spec.linux.namespaces = [...(spec.linux.namespaces ?? []).filter((n) => n.type !== "pid"), { type: "pid" }];
      }
      // On the host the spec decides, as under runc: no pid entry is the host's (hostPID), and a
      // pod-shared one (sandbox_pidns) is joined below.
      const dir = path.join(this.o.stateDir, "containers", req.containerId);
      const init = new AgentProcess(req.containerId, "", !!req.OCI.Process.Terminal);
      const c = new AgentContainer(req.containerId, init, req.execId, dir);
      // Containers of a pod share the sandbox container's IPC and UTS namespaces, as kata-agent arranges.
      const join: { ipc?: string; uts?: string; pid?: string; network?: string } = {};
      const sbx = this.containers.get(this.sandbox.id);
      if (sbx && sbx !== c && sbx.init.rp && sbx.init.status === undefined && this.o.runtime.isolated) {
        join.ipc = `/proc/${sbx.init.rp.pid}/ns/ipc`;
        join.uts = `/proc/${sbx.init.rp.pid}/ns/uts`;
        // And its network namespace, where the spec has one: containerd names it /proc/<sandbox task
        // pid>/ns/net, and the pid the shim reports is the agent's (or QEMU's), not the pause
        // container's. A host-network pod's specs have no network entry, and keep the host's.
        if (spec.linux?.namespaces?.some((n) => n.type === "network")) join.network = `/proc/${sbx.init.rp.pid}/ns/net`;
        if (req.sandboxPidns || this.sandbox.pidns) join.pid = `/proc/${sbx.init.rp.pid}/ns/pid`;
      }
      this.containers.set(c.id, c);
      try {
        const rp = await this.o.runtime.create({ id: c.id, dir, spec, join, cgroupsPath: `${cgroupParent()}/${this.sandbox.id}/${c.id}` });
        if (rp) init.attach(rp, (s) => this.onExit(c, init, s));
      } catch (e) {
        this.containers.delete(c.id);
        await this.o.runtime.destroy(c.id).catch(() => {});
        throw e;
      }
      this.o.logger.info("container created", { container: c.id, runtime: this.o.runtime.name, ...(guestSysctls.length ? { guestSysctls: guestSysctls.join(",") } : {}) });
      return {};
    },

    StartContainer: async (req) => {
      const c = this.container(req.containerId);
      if (c.status !== "created") throw failedPrecondition(`container ${c.id} is ${c.status}, not created`);
      if (c.init.status !== undefined) throw failedPrecondition(`container ${c.id}'s init already exited with ${c.init.status}`);
      const rp = await this.o.runtime.start(c.id);
      if (rp) c.init.attach(rp, (s) => this.onExit(c, c.init, s));
      if (c.init.status === undefined) c.status = "running";
      return {};
    },

    ExecProcess: async (req) => {
      const c = this.container(req.containerId);
      if (c.status !== "running") throw failedPrecondition(`container ${c.id} is ${c.status}: cannot exec`);
      if (!req.execId) throw invalidArgument("exec_id is empty");
      if (c.execs.has(req.execId) || req.execId === c.initExecId) throw alreadyExists(`exec ${req.execId} already exists in ${c.id}`);
      if (!req.process) throw invalidArgument("exec has no process");
      const p = new AgentProcess(c.id, req.execId, !!req.process.Terminal);
      c.execs.set(req.execId, p);
      try {
        const rp = await this.o.runtime.exec(c.id, req.execId, processFromGrpc(req.process));
        p.attach(rp, (s) => this.onExit(c, p, s));
      } catch (e) {
        c.execs.delete(req.execId);
        throw e;
      }
      return {};
    },

    SignalProcess: async (req) => {
      const c = this.container(req.containerId);
      const initTarget = !req.execId || req.execId === c.id || req.execId === c.initExecId;
      if (initTarget && req.signal === os.constants.signals.SIGKILL) {
        if (c.status === "stopped" || c.status === "created") {
          // nothing runs yet or any more: kill the init if it exists
          if (c.init.rp && c.init.status === undefined) await this.o.runtime.signal(c.id, c.init.rp, req.signal);
          return {};
        }
        await this.o.runtime.signal(c.id, "all", req.signal);
        return {};
      }
      const p = this.process(req.containerId, req.execId);
      if (!p.rp || p.status !== undefined) return {}; // not running: like ESRCH, nothing to do
      await this.o.runtime.signal(c.id, p.rp, req.signal);
      return {};
    },

    WaitProcess: async (req) => {
      const c = this.container(req.containerId);
      const p = this.process(req.containerId, req.execId);
      const status = await p.exited;
      if (!p.reaped) {
        p.reaped = true;
        if (p !== c.init) {
          c.execs.delete(p.execId);
          p.closeStdin();
        }
      }
      return { status };
    },

    ReadStdout: async (req) => {
      const p = this.process(req.containerId, req.execId);
      return { data: await p.stdout.read(req.len) };
    },

    ReadStderr: async (req) => {
      const p = this.process(req.containerId, req.execId);
      return { data: await p.stderr.read(req.len) };
    },

    WriteStdin: async (req) => {
      const p = this.process(req.containerId, req.execId);
      const stdin = p.rp?.stdin;
      if (!stdin || stdin.writableEnded || stdin.destroyed) throw failedPrecondition(`stdin of ${req.containerId}/${req.execId || "init"} is closed`);
      await new Promise<void>((resolve, reject) => stdin.write(req.data, (e) => (e ? reject(e) : resolve())));
      return { len: req.data.length };
    },

    CloseStdin: async (req) => {
      const p = this.process(req.containerId, req.execId);
      p.rp?.closeStdin();
      return {};
    },

    TtyWinResize: async (req) => {
      const p = this.process(req.containerId, req.execId);
      if (!p.terminal) throw failedPrecondition(`${req.containerId}/${req.execId || "init"} has no terminal`);
      if (p.status !== undefined) throw failedPrecondition(`cannot resize a stopped process (${req.containerId}/${req.execId || "init"})`);
      if (p.rp) p.rp.resize(req.row, req.column);
      else p.pendingResize = { rows: req.row, cols: req.column };
      return {};
    },

    PauseContainer: async (req) => {
      const c = this.container(req.containerId);
      if (c.status !== "running") throw failedPrecondition(`container ${c.id} is ${c.status}, not running`);
      await this.o.runtime.pause(c.id);
      c.status = "paused";
      return {};
    },

    ResumeContainer: async (req) => {
      const c = this.container(req.containerId);
      if (c.status !== "paused") throw failedPrecondition(`container ${c.id} is ${c.status}, not paused`);
      await this.o.runtime.resume(c.id);
      c.status = c.init.status === undefined ? "running" : "stopped";
      return {};
    },

    StatsContainer: async (req) => {
      const c = this.container(req.containerId);
      return { cgroupStats: await this.o.runtime.stats(c.id), networkStats: [] };
    },

    UpdateContainer: async (req) => {
      const c = this.container(req.containerId);
      if (!req.resources) throw invalidArgument("no resources to update");
      const r = resourcesFromGrpc(req.resources);
      this.fitHugepages(c.id, r);
      await this.o.runtime.update(c.id, r);
      return {};
    },

    RemoveContainer: async (req) => {
      this.container(req.containerId);
      await this.removeContainer(req.containerId, req.timeout);
      return {};
    },

    GetOOMEvent: () =>
      new Promise((resolve, reject) => {
        const id = this.oomEvents.shift();
        if (id !== undefined) return resolve({ containerId: id });
        if (!this.sandbox) return reject(new ErrdefsError("Unavailable", "sandbox not created"));
        this.oomWaiters.push({ resolve: (containerId) => resolve({ containerId }), reject });
      }),

    GetGuestDetails: () => ({
      memBlockSizeBytes: 128 << 20,
      agentDetails: {
        version: AGENT_VERSION,
        initDaemon: process.pid === 1,
        storageHandlers: this.o.guest ? ["9p", "virtio-fs", "ephemeral", "local"] : [],
        supportsSeccomp: this.o.runtime.isolated,
        extraFeatures: [`runtime=${this.o.runtime.name}`],
      },
      supportMemHotplugProbe: false,
    }),

    GetMetrics: () => {
      const m = process.memoryUsage();
      return {
        metrics: [
          "# HELP shimlab_agent_containers Containers the agent holds.",
          "# TYPE shimlab_agent_containers gauge",
          `shimlab_agent_containers ${this.containers.size}`,
          "# HELP shimlab_agent_rss_bytes Resident memory of the agent process.",
          "# TYPE shimlab_agent_rss_bytes gauge",
          `shimlab_agent_rss_bytes ${m.rss}`,
          "",
        ].join("\n"),
      };
    },

    // The network calls work in a guest (network.ts). Memory, device and
    // guest-management calls: a mock agent has nothing truthful to do for
    // these, so it says so.
    UpdateInterface: async (req) => this.net("UpdateInterface").updateInterface(req.interface),
    UpdateRoutes: async (req) => ({ Routes: await this.net("UpdateRoutes").updateRoutes(req.routes?.Routes ?? []) }),
    ListInterfaces: async () => ({ Interfaces: await this.net("ListInterfaces").listInterfaces() }),
    ListRoutes: async () => ({ Routes: await this.net("ListRoutes").listRoutes() }),
    AddARPNeighbors: () => this.unsupported("AddARPNeighbors"),
    GetIPTables: () => this.unsupported("GetIPTables"),
    SetIPTables: () => this.unsupported("SetIPTables"),
    MemAgentMemcgSet: () => this.unsupported("MemAgentMemcgSet"),
    MemAgentCompactSet: () => this.unsupported("MemAgentCompactSet"),
    OnlineCPUMem: () => this.unsupported("OnlineCPUMem"),
    ReseedRandomDev: () => this.unsupported("ReseedRandomDev"),
    MemHotplugByProbe: () => this.unsupported("MemHotplugByProbe"),
    SetGuestDateTime: () => this.unsupported("SetGuestDateTime"),
    CopyFile: () => this.unsupported("CopyFile"),
    AddSwap: () => this.unsupported("AddSwap"),
    AddSwapPath: () => this.unsupported("AddSwapPath"),
    GetVolumeStats: () => this.unsupported("GetVolumeStats"),
    ResizeVolume: () => this.unsupported("ResizeVolume"),
    SetPolicy: () => this.unsupported("SetPolicy"),
    UpdateEphemeralMounts: () => this.unsupported("UpdateEphemeralMounts"),
    RemoveStaleVirtiofsShareMounts: () => this.unsupported("RemoveStaleVirtiofsShareMounts"),
    GetDiagnosticData: () => this.unsupported("GetDiagnosticData"),
  };

  /** In a guest, limits of huge page sizes the guest lacks go (hugepages.ts); the host's sizes are the node's. */
  private fitHugepages(containerId: string, r: OciLinuxResources | undefined): void {
    if (!this.o.guest || !r?.hugepageLimits?.length) return;
    const { kept, dropped } = splitHugepageLimits(r.hugepageLimits, hugepageSizes());
    if (!dropped.length) return;
    this.o.logger.warn("huge page sizes this guest lacks: their limits are dropped", { container: containerId, sizes: dropped.map((l) => l.pageSize).join(",") });
    r.hugepageLimits = kept.length ? kept : undefined;
  }

  /** oom-score.ts: a value below the agent's own, where it may not lower it, is raised to its own. */
  private fitOomScore(containerId: string, p: { oomScoreAdj?: number } | undefined): void {
    if (p?.oomScoreAdj === undefined) return;
    const own = ownOomScoreAdj();
    const v = clampOomScoreAdj(p.oomScoreAdj, own, canLowerOomScore());
    if (v === p.oomScoreAdj) return;
    this.o.logger.warn("oom_score_adj below the agent's own, which it lacks CAP_SYS_RESOURCE to lower: raised to its own", { container: containerId, asked: p.oomScoreAdj, set: v });
    p.oomScoreAdj = v;
  }

  private net(method: string): GuestNetwork {
    if (!this.o.network) throw notImplemented(`${method}: this agent runs on the host and shares its network, which is not its to change (a guest agent serves it)`);
    return this.o.network;
  }

  private unsupported(method: string): never {
    throw notImplemented(`${method} is not supported by the shimlab mock agent`);
  }

  private async removeContainer(id: string, timeoutSec: number): Promise<void> {
    const c = this.containers.get(id);
    if (!c) return;
    if (c.status === "paused") await this.o.runtime.resume(c.id).catch(() => {});
    if (c.init.rp && c.init.status === undefined) {
      await this.o.runtime.signal(c.id, "all", os.constants.signals.SIGKILL).catch(() => {});
      const waited = c.init.exited.then(() => true);
      const ok = timeoutSec > 0 ? await Promise.race([waited, new Promise<boolean>((r) => setTimeout(() => r(false), timeoutSec * 1000))]) : await waited;
      if (!ok) throw deadlineExceeded(`container ${id} still has processes after ${timeoutSec}s`);
    }
    await this.o.runtime.destroy(c.id);
    for (const p of [c.init, ...c.execs.values()]) {
      p.closeStdin();
      p.stdout.abort();
      p.stderr.abort();
    }
    this.containers.delete(id);
    this.o.logger.info("container removed", { container: id });
  }

  /** Everything is torn down when the agent goes (its shim is gone, or it was told to stop). */
  async shutdown(): Promise<void> {
    for (const id of [...this.containers.keys()].reverse()) await this.removeContainer(id, 5).catch(() => {});
    if (this.sandbox) this.o.runtime.removeCgroup(`${cgroupParent()}/${this.sandbox.id}`);
  }
}
