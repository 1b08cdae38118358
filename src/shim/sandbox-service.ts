// containerd.runtime.sandbox.v1.Sandbox: what containerd 2.x's shim sandbox
// controller asks of the shim when a CRI runtime has `sandboxer = "shim"`,
// served beside the Task API on the same socket. One sandbox per shim, as
// one pod per shim: CreateSandbox opens it, StartSandbox boots the agent or
// VM and the process holding the pod's namespaces, the pod's containers then
// arrive as Task API creates that join it, StopSandbox and ShutdownSandbox
// take it down, and the shim exits after ShutdownSandbox.
//
// Errors carry the errdefs class containerd acts on: an id this shim does
// not serve is NotFound (the controller's Stop and CRI read that as "gone");
// a second CreateSandbox is AlreadyExists; a move the sandbox's state forbids
// is FailedPrecondition, except a stop of a stopped sandbox, NotFound as
// runc's shim answers a kill of an exited process (sandbox-state.ts).
import type { Sandbox as SandboxDef } from "../gen/containerd.runtime.sandbox.v1";
import type { ServiceImpl } from "../ttrpc/service";
import { alreadyExists, failedPrecondition, notFound } from "../errdefs";
import type { Logger } from "../util/logger";
import { Mutex } from "../util/mutex";
import { GO_ZERO_TIME, timestampOf } from "../util/time";
import { cgroupParent } from "../util/cgroup";
import type { PodSandbox } from "../pod/pod-sandbox";
import { sandboxInitPath } from "../native";
import type { ShimConfig } from "./config";
import type { TaskService } from "./task-service";
import { validateId } from "./identifiers";
import { markUnusual } from "../util/code-cache";

/**
 * What only a Sandbox API pod needs, loaded by its first CreateSandbox: CRI's runtime.v1 codecs alone were
 * ~0.35 MB of every daemon's idle memory, and a Task API pod (containerd 1.x, 2.x's podsandbox) never reads them.
 */
async function sandboxModules() {
  markUnusual();
  const [options, init, pod] = await Promise.all([import("./pod-options"), import("../pod/sandbox-init"), import("../pod/pod-sandbox")]);
  return { ...options, ...init, ...pod };
}

export interface SandboxServiceOptions {
  namespace: string;
  /** The id containerd started this shim for (-id): the sandbox's own, for a shim sandboxer. */
  shimId?: string;
  tasks: TaskService;
  logger: Logger;
  /** The daemon's configuration: containerd's ConfigPath reached it through `start`. */
  config: ShimConfig;
  /** Why that configuration did not load (the daemon fell back to the defaults): CreateSandbox refuses with it. */
  configError?: Error;
  /** ShutdownSandbox answered: the shim may exit. */
  onShutdown: () => void;
  /** The static program holding a pod's namespaces (native/build/sandbox-init). */
  initProgram?: string;
}

/** CRI reads SandboxStatus.state as a runtime.v1.PodSandboxState name; anything else counts as not ready. */
export const SANDBOX_READY = "SANDBOX_READY";
export const SANDBOX_NOTREADY = "SANDBOX_NOTREADY";

/** Go's GOARCH names for Node's process.arch, as image platforms spell them. */
const GOARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };

export class SandboxService {
  private pod: PodSandbox | null = null;
  private readonly lock = new Mutex();
  private readonly log: Logger;

  constructor(private readonly o: SandboxServiceOptions) {
    this.log = o.logger;
  }

  get current(): PodSandbox | null {
    return this.pod;
  }

  private sandbox(id: string): PodSandbox {
    const p = this.pod;
    if (!p || p.id !== id) throw notFound(`sandbox ${id} not found`);
    if (p.state === "shutdown") throw notFound(`sandbox ${id} was shut down`);
    return p;
  }

  readonly impl: ServiceImpl<typeof SandboxDef> = {
    CreateSandbox: (req) =>
      this.lock.run(async () => {
        validateId("sandbox id", req.sandboxId);
        if (this.pod?.id === req.sandboxId) throw alreadyExists(`sandbox ${req.sandboxId} already exists`);
        if (this.pod) throw failedPrecondition(`this shim serves sandbox ${this.pod.id}: one sandbox per shim`);
        // A sandbox has no ConfigPath of its own as a task's Create has: never run it on defaults the operator did not ask for.
        if (this.o.configError) throw this.o.configError;
        const { podConfigFrom, sandboxInitSpec, PodSandbox } = await sandboxModules();
        const pod = podConfigFrom(req.options, req.sandboxId);
        const config = this.o.config;
        const hypervisor = config.hypervisor();
        // Refused now, before anything boots, as a pause container's spec would be (a VM and the host's namespaces).
        hypervisor.admit?.(sandboxInitSpec(pod, { sandboxId: req.sandboxId, netns: req.netnsPath || undefined, rootfs: "/" }));
        const sandbox = this.o.tasks.openSandbox({
          id: req.sandboxId,
          config,
          hostname: pod.hostname,
          annotations: { ...pod.annotations, ...req.annotations },
          netns: req.netnsPath || undefined,
        });
        this.pod = new PodSandbox({
          id: req.sandboxId,
          bundle: req.bundlePath || process.cwd(),
          pod,
          netns: req.netnsPath,
          sandbox,
          logger: this.log,
          initProgram: this.o.initProgram ?? sandboxInitPath(),
        });
        this.o.tasks.attachPod(this.pod);
        this.log.info("sandbox created", { sandbox: req.sandboxId, pod: pod.name, netns: req.netnsPath || "node", hypervisor: config.hypervisorKind });
        return {};
      }),

    StartSandbox: (req) =>
      this.lock.run(async () => {
        const p = this.sandbox(req.sandboxId);
        await p.start();
        return { pid: p.pid, createdAt: timestampOf(p.createdAt) };
      }),

    Platform: (req) => {
      this.sandbox(req.sandboxId);
      // A VM guest runs the host's architecture (no emulation of another).
      return { platform: { os: "linux", architecture: GOARCH[process.arch] ?? process.arch, variant: "", osVersion: "" } };
    },

    StopSandbox: (req) => this.lock.run(() => this.sandbox(req.sandboxId).stop(req.timeoutSecs).then(() => ({}))),

    WaitSandbox: async (req, ctx) => {
      const p = this.sandbox(req.sandboxId);
      const exit = await Promise.race([
        p.wait(),
        new Promise<never>((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true })),
      ]);
      return { exitStatus: exit.status, exitedAt: timestampOf(exit.exitedAt) };
    },

    SandboxStatus: (req) => {
      const p = this.sandbox(req.sandboxId);
      const info: Record<string, string> = {};
      if (req.verbose) {
        // crictl inspectp parses each value as JSON.
        info.shimlab = JSON.stringify({
          state: p.state,
          hypervisor: this.o.config.hypervisorKind,
          agentPid: p.pid || undefined,
          runDir: p.sandbox.runDir,
          netns: p.netns || null,
          pod: p.pod.name,
          containers: this.o.tasks.taskIds,
        });
      }
      return {
        sandboxId: p.id,
        pid: p.pid,
        state: p.state === "ready" ? SANDBOX_READY : SANDBOX_NOTREADY,
        info,
        createdAt: timestampOf(p.createdAt),
        exitedAt: p.exit ? timestampOf(p.exit.exitedAt) : GO_ZERO_TIME,
      };
    },

    PingSandbox: async (req) => {
      await this.sandbox(req.sandboxId).ping();
      return {};
    },

    ShutdownSandbox: (req) =>
      this.lock.run(async () => {
        if (!this.pod && req.sandboxId === this.o.shimId && !this.o.tasks.taskIds.length) {
          // containerd's shim controller shuts down the shim it started when CreateSandbox failed
          // (plugins/sandbox/controller.go cleanupShim): nothing was made, but the shim must go.
          this.log.info("shutdown of a sandbox never created: the shim exits", { sandbox: req.sandboxId });
          setImmediate(() => this.o.onShutdown());
          return {};
        }
        const p = this.sandbox(req.sandboxId);
        await p.shutdown(this.o.tasks.taskIds);
        this.log.info("sandbox shut down", { sandbox: p.id, exit: p.exit?.status });
        // After the answer is on its way: containerd then closes the connection and runs `delete`.
        setImmediate(() => this.o.onShutdown());
        return {};
      }),

    SandboxMetrics: async (req) => {
      const p = this.sandbox(req.sandboxId);
      if (p.state !== "ready") throw failedPrecondition(`sandbox ${p.id} is ${p.state}: no metrics`);
      const vm = p.sandbox.vmHandle;
      markUnusual();
      const [{ processMetrics, cgroupMetrics }, { Metrics }] = await Promise.all([import("../pod/sandbox-metrics"), import("../gen/io.containerd.cgroups.v1")]);
      const m = vm?.kind === "qemu" ? processMetrics(vm.pid) : cgroupMetrics(`${cgroupParent()}/${p.id}`);
      if (!m) throw failedPrecondition(`sandbox ${p.id} has no cgroup ${cgroupParent()}/${p.id} (the agent's host runtime makes none)`);
      return { metrics: { timestamp: timestampOf(new Date()), id: p.id, data: { typeUrl: Metrics.typeName, value: Metrics.encode(m) } } };
    },
  };
}
