// The containerd side of a scenario: the harness's containerd stand-in
// (ContainerdEmulator), with its hooks set for the scenario's faults (an
// interceptor on its events endpoint for Forward faults, a fault proxy in
// front of each shim's socket for link faults), its bundles and client stdio,
// the Sandbox API pod, and handles on the processes a fault may kill or pause.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { RecordedEvent } from "../harness/events-server";
import { ContainerdEmulator, cgroupParentFor } from "../harness/emulator";
import type { ShimLink } from "../harness/shim-link";
import { mkfifo, type ClientStdio } from "../harness/fifo";
import { MOCK_AGENT_SCRIPT, SHIM_DAEMON_SCRIPT, listProcesses, shimlabProcesses } from "../harness/leaks";
import { FP_SHIM_BINARY, SHIM_BINARY } from "../harness/containerd";
import { ShimRunner } from "../harness/shim-runner";
import { NamespaceMode, PodSandboxConfig } from "../gen/runtime.v1";
import { Code, RpcError } from "../ttrpc/status";
import { FaultProxy } from "../faults/proxy";
import type { Toxic } from "../faults/toxics";
import { EVENT_FAULTS_ENV, type EventFaultRule } from "../faults/event-faults";
import { QEMU_HARNESS_SETTINGS } from "../harness/qemu-config";
import { MUTANTS_ENV } from "../faults/mutants";
import { launchFaults, needsFpShim, needsShimLinkProxy, type FaultWorld, type ShimLaunch } from "../faults/kinds";
import { SANDBOX_API_POD } from "./load";
import { ScenarioFactory, type FactoryLinkFault } from "./world-factory";
import type { ContainerDef, Scenario } from "./types";

export interface WorldOptions {
  /** The shim to run; by default the production one, or the failpoint shim when the shim itself must inject faults. */
  binary?: string;
  /** Interceptor mutants (SHIMLAB_MUTANTS) for the shim. */
  mutants?: string[];
  /** Extra event faults (mutants made of event faults). */
  eventFaults?: EventFaultRule[];
  /** Overrides of the shim's configuration (mutants made of config). */
  config?: { dial_timeout_ms?: number };
  debug?: boolean;
}

/** The pod made through the Sandbox API (sandbox_api): its own shim, as containerd 2.x's shim sandboxer starts it. */
export interface SandboxApiPod {
  id: string;
  /** A bundle without config.json, as the shim controller's NewBundle makes it. */
  bundle: string;
  address?: string;
  /** containerd's link to the pod's shim, once it is started. */
  link?: ShimLink;
  /** ShutdownSandbox answered: the shim is gone, and with it every task it served. */
  shutdown: boolean;
}

export interface ContainerHandle {
  id: string;
  def: ContainerDef;
  bundle: string;
  stdio: ClientStdio;
  /** The shim socket's address, once its shim is started. */
  address?: string;
  /** containerd's link to its shim: its Task client while containerd is connected. */
  link?: ShimLink;
  execStdio: Map<string, ClientStdio>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Fault scopes the shim applies inside itself, which only the failpoint shim (src/fp-shim) does. */

/** Stdio whose stdout fifo exists but that nobody ever opens (the shim must not wait for a reader). */
function neverOpenedStdio(dir: string, id: string, withStdin: boolean): ClientStdio {
  const d = fs.mkdtempSync(path.join(dir, "fifo-"));
  const p = (n: string) => path.join(d, `${id}-${n}`);
  for (const n of ["stdout", "stderr", ...(withStdin ? ["stdin"] : [])]) mkfifo(p(n));
  return {
    dir: d,
    stdin: withStdin ? p("stdin") : "",
    stdout: p("stdout"),
    stderr: p("stderr"),
    terminal: false,
    out: () => "",
    err: () => "",
    write: () => {},
    closeStdin: () => {},
    close: () => fs.rmSync(d, { recursive: true, force: true }),
    drained: async () => {},
  };
}

export class World implements FaultWorld {
  readonly dir: string;
  readonly namespace = "scn";
  readonly emu: ContainerdEmulator;
  readonly events: (RecordedEvent & { time: number })[] = [];
  readonly containers = new Map<string, ContainerHandle>();
  readonly sandboxId: string;
  /** Set when the scenario has sandbox_api. */
  readonly pod: SandboxApiPod | null;
  private readonly proxies = new Map<string, FaultProxy>();
  private readonly linkToxics: Toxic[] = [];
  private readonly t0: number;
  /** Forward faults: answer Unavailable, or hold each Forward for ms (Infinity: until healed). */
  forwardFault: { action: "unavailable" | "delay"; ms: number } | null = null;
  private forwardHeld: (() => void)[] = [];
  private hookDown = false;
  /** With a real containerd (the containerd driver), going down and up is its business. */
  hooks: { down(): Promise<void>; up(): Promise<void> } | null = null;
  readonly stopped = new Set<number>();
  readonly useProxy: boolean;
  /**
   * The shim injects some of this run's faults itself (task failpoints, event faults, agent-link
   * toxics, mutants): only the failpoint shim does, so it runs instead of the production one.
   */
  readonly fpShim: boolean;
  /** The scenario's factory of warm sandboxes, when it has one. */
  readonly factory: ScenarioFactory | null;

  get factoryFault(): FactoryLinkFault {
    return this.factory?.fault ?? null;
  }

  set factoryFault(f: FactoryLinkFault) {
    if (this.factory) this.factory.fault = f;
  }

  constructor(
    readonly scenario: Scenario,
    readonly o: WorldOptions = {},
    t0 = performance.now(),
  ) {
    this.t0 = t0;
    // Short: the shim's socket name is a hash, but fifos and the agent's socket live under here.
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "scn-"));
    this.sandboxId = scenario.sandbox_api ? SANDBOX_API_POD : Object.keys(scenario.containers)[0];
    this.factory = scenario.factory ? new ScenarioFactory(this.dir, scenario.factory.pool_size, { SHIMLAB_CGROUP_PARENT: cgroupParentFor(this.dir) }) : null;
    this.useProxy = needsShimLinkProxy(scenario.faults);
    this.fpShim = needsFpShim(scenario.faults) || !!o.mutants?.length || !!o.eventFaults?.length;
    this.emu = new ContainerdEmulator({
      binary: o.binary ?? (this.fpShim ? FP_SHIM_BINARY : SHIM_BINARY),
      namespace: this.namespace,
      dir: this.dir,
      debug: o.debug,
      env: this.shimEnv(),
      timeoutMs: 20_000,
      // Scenarios play containerd 1.6 (and 2.1 for the Sandbox API pod), whatever SHIMLAB_EMULATE says.
      containerd2: null,
      linkProxy: this.useProxy ? (sock) => this.proxyFor(sock) : undefined,
    });
    this.emu.interceptEvents(async (_call, next) => {
      const f = this.forwardFault;
      if (f?.action === "unavailable") throw new RpcError(Code.Unavailable, "containerd events service unavailable (scenario fault)");
      if (f?.action === "delay") await new Promise<void>((r) => {
        this.forwardHeld.push(r);
        if (Number.isFinite(f.ms)) setTimeout(r, f.ms);
      });
      return next();
    });
    this.emu.events.on("event", (e: RecordedEvent) => this.events.push({ ...e, seq: this.events.length, time: this.now() }));
    this.pod = scenario.sandbox_api ? { id: SANDBOX_API_POD, bundle: path.join(this.emu.bundlesDir(), SANDBOX_API_POD), shutdown: false } : null;
  }

  get address(): string {
    return this.emu.address;
  }

  get runner(): ShimRunner {
    return this.emu.runner;
  }

  get cgroupParent(): string {
    return this.emu.cgroupParent;
  }

  /** containerd is down (the emulator's, or the real one's through the hooks). */
  get down(): boolean {
    return this.hooks ? this.hookDown : this.emu.down;
  }

  now(): number {
    return Math.round((performance.now() - this.t0) * 10) / 10;
  }

  /** The shim's environment: where it may put things, and the faults fixed at its start. */
  shimEnv(): NodeJS.ProcessEnv {
    const s = this.scenario;
    const env: NodeJS.ProcessEnv = { SHIMLAB_CGROUP_PARENT: cgroupParentFor(this.dir), SHIMLAB_RUN_DIR: path.join(this.dir, "run") };
    Object.assign(env, this.faultLaunch().env);
    if (this.o.mutants?.length) env[MUTANTS_ENV] = this.o.mutants.join(",");
    const cfg = { ...s.shim_config, ...this.o.config };
    const qemu = this.scenario.shim_config?.hypervisor === "qemu";
    if (cfg.dial_timeout_ms || qemu || this.factory) {
      const f = path.join(this.dir, "shimlab.toml");
      const lines = [`hypervisor = "${qemu ? "qemu" : "none"}"`];
      if (cfg.dial_timeout_ms) lines.push("[agent]", `dial_timeout_ms = ${cfg.dial_timeout_ms}`);
      if (this.factory) lines.push("[factory]", "enable = true", `socket = ${JSON.stringify(this.factory.socket)}`);
      // The sandbox reads the guest image's manifest; start() below builds the image first.
      if (qemu) lines.push("[qemu]", ...QEMU_HARNESS_SETTINGS);
      fs.writeFileSync(f, lines.join("\n") + "\n");
      env.SHIMLAB_CONFIG = f;
      if (this.factory) this.factory.config = { file: f, qemu };
    }
    return env;
  }

  /** What the faults fixed at shim start (and the mutants made of event faults) put in its environment and the sandbox's bundle. */
  faultLaunch(): ShimLaunch {
    return launchFaults(this.scenario.faults, { [EVENT_FAULTS_ENV]: this.o.eventFaults ?? [] });
  }

  async start(): Promise<void> {
    if (this.scenario.shim_config?.hypervisor === "qemu") {
      const { ensureImage } = await import("../guest-image");
      await ensureImage({ runc: true });
    }
    await this.factory?.start();
    await this.emu.start();
    if (this.pod) fs.mkdirSync(path.join(this.pod.bundle, "rootfs"), { recursive: true, mode: 0o711 });
    const ids = Object.keys(this.scenario.containers);
    for (const id of ids) {
      const def = this.scenario.containers[id];
      const annotations: Record<string, string> = { ...def.annotations };
      if (id === this.sandboxId) {
        // The failpoint shim reads these from the bundle it starts in, as containerd's does.
        Object.assign(annotations, this.faultLaunch().annotations);
      } else {
        annotations["io.kubernetes.cri.container-type"] = "container";
        annotations["io.kubernetes.cri.sandbox-id"] = this.sandboxId;
      }
      const spec = this.emu.spec(id, { args: def.args, env: def.env, terminal: def.terminal, rootPath: this.rootfs, annotations, memoryLimit: def.memory_limit });
      const bundle = this.emu.bundle(id, spec);
      const stdio =
        def.stdout === "never-open"
          ? neverOpenedStdio(this.dir, id, !!def.stdin)
          : def.stdout === "none"
            ? { ...neverOpenedStdio(this.dir, id, false), stdout: "", stderr: "" }
            : this.emu.stdio(id, { stdin: def.stdin, terminal: def.terminal });
      this.containers.set(id, { id, def, bundle, stdio, execStdio: new Map() });
    }
  }

  rootfs = "";

  // ---- containerd's side going away and coming back ----

  releaseForward(): void {
    for (const r of this.forwardHeld.splice(0)) r();
  }

  /** containerd goes away: no events endpoint, no connections to the shims. */
  containerdDown(): Promise<void> {
    // Handed straight on: one async layer more here reorders the step's completion against the calls it cuts off.
    return this.hooks ? this.hooksDown() : this.emu.containerdDown();
  }

  private async hooksDown(): Promise<void> {
    if (!this.hooks) return;
    if (this.hookDown) return;
    this.hookDown = true;
    return this.hooks.down();
  }

  /** containerd is back: events served again, shims reconnected by their address files' addresses. */
  containerdUp(): Promise<void> {
    return this.hooks ? this.hooksUp() : this.emu.containerdUp();
  }

  private async hooksUp(): Promise<void> {
    if (!this.hooks || !this.hookDown) return;
    await this.hooks.up();
    this.hookDown = false;
  }

  /** containerd drops its connections to the shims and dials them again (as after a broken link). */
  reconnect(): Promise<void> {
    return this.emu.reconnect();
  }

  // ---- shims ----

  /**
   * The pod's shim as containerd 2.x's shim sandboxer starts it: `start` in a
   * bundle without config.json, as 2.1 runs it (it reads the version 3 answer),
   * and a Sandbox client on the address.
   */
  async startSandboxShim(): Promise<SandboxApiPod> {
    const pod = this.pod!;
    const runner = new ShimRunner({ ...this.runner.o, containerd2: { series: "2.1" } });
    const t = await runner.start(pod.id, pod.bundle);
    pod.address = t.address;
    // The link faults are on the Task connections; the Sandbox one stays direct.
    pod.link = this.emu.linkTo(t, { direct: true });
    return pod;
  }

  /** ShutdownSandbox answered: the pod's shim is gone, and containerd never dials it again. */
  podShutDown(): void {
    this.pod!.shutdown = true;
    if (this.pod!.link) this.pod!.link.retired = true;
  }

  /** CreateSandbox as CRI sends it for a host-network pod under this world's cgroup parent. */
  createSandboxRequest() {
    const pod = this.pod!;
    const config = {
      metadata: { name: `scn-${pod.id}`, namespace: this.namespace, uid: `uid-${path.basename(this.dir)}`, attempt: 0 },
      hostname: pod.id,
      linux: { cgroupParent: this.cgroupParent, securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.POD, ipc: NamespaceMode.POD } } },
    };
    return { sandboxId: pod.id, bundlePath: pod.bundle, rootfs: [], options: { typeUrl: PodSandboxConfig.typeName, value: Buffer.from(PodSandboxConfig.encode(config)) }, netnsPath: "", annotations: {} };
  }

  /** A container of a Sandbox API pod: containerd connects to the pod's shim (task API version 3), no `start`. */
  async joinPod(c: ContainerHandle): Promise<void> {
    const pod = this.pod!;
    if (!pod.address) throw new RpcError(Code.FailedPrecondition, `sandbox ${pod.id} has no shim yet (create-sandbox first)`);
    c.address = pod.address;
    c.link = await this.emu.link(pod.address);
  }

  /** `start` for this container's bundle (the pod's shim answers for every container). */
  async startShim(c: ContainerHandle): Promise<void> {
    const t = await this.runner.start(c.id, c.bundle);
    c.address = t.address;
    c.link = await this.emu.linkTo(t);
  }

  /** The containerd-link hook: one fault proxy per shim socket, carrying the toxics in force. */
  private async proxyFor(sock: string): Promise<string> {
    let p = this.proxies.get(sock);
    if (!p) {
      p = new FaultProxy({ listen: path.join(this.dir, `link-${this.proxies.size}.sock`), upstream: sock });
      for (const t of this.linkToxics) p.addToxic(t);
      await p.start();
      this.proxies.set(sock, p);
    }
    return p.o.listen;
  }

  addLinkToxic(t: Toxic): void {
    this.linkToxics.push(t);
    for (const p of this.proxies.values()) p.addToxic(t);
  }

  removeLinkToxic(name: string): void {
    const i = this.linkToxics.findIndex((t) => t.name === name);
    if (i >= 0) this.linkToxics.splice(i, 1);
    for (const p of this.proxies.values()) p.removeToxic(name);
  }

  // ---- processes a fault can hit ----

  async pidsOf(target: string): Promise<number[]> {
    const mine = shimlabProcesses([this.dir]);
    if (target === "shim") return mine.filter((p) => SHIM_DAEMON_SCRIPT.test(p.cmdline)).map((p) => p.pid);
    if (target === "agent") return mine.filter((p) => MOCK_AGENT_SCRIPT.test(p.cmdline)).map((p) => p.pid);
    if (target === "factory") return this.factory?.pids() ?? [];
    if (target === "warm-agent") return ((await this.factory?.warmAgents()) ?? []).slice(0, 1);
    if (target === "vm") return listProcesses().filter((p) => p.cmdline.includes("qemu-system") && p.cmdline.includes(this.dir)).map((p) => p.pid);
    if (target.startsWith("init:")) {
      const suffix = `:${this.cgroupParent}/${this.sandboxId}/${target.slice(5)}`;
      return listProcesses()
        .filter((p) => {
          try {
            return fs
              .readFileSync(`/proc/${p.pid}/cgroup`, "utf8")
              .split("\n")
              .some((l) => l.endsWith(suffix));
          } catch {
            return false;
          }
        })
        .map((p) => p.pid);
    }
    return [];
  }

  /** Signals a target; "containerd" means containerd goes down (KILL) or stalls its events (STOP). */
  async signal(target: string, sig: NodeJS.Signals): Promise<number[]> {
    if (target === "containerd") {
      if (sig === "SIGSTOP") this.forwardFault = { action: "delay", ms: Infinity };
      else if (sig === "SIGCONT") {
        this.forwardFault = null;
        this.releaseForward();
      } else await this.containerdDown();
      return [];
    }
    const pids = await this.pidsOf(target);
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
        if (sig === "SIGSTOP") this.stopped.add(pid);
        if (sig === "SIGCONT") this.stopped.delete(pid);
      } catch {
        /* already gone */
      }
    }
    return pids;
  }

  /** Resumes everything a fault paused, so that teardown can reach it. */
  async healAll(): Promise<void> {
    this.linkToxics.splice(0);
    for (const p of this.proxies.values()) p.reset();
    this.forwardFault = null;
    this.releaseForward();
    for (const pid of this.stopped) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        /* gone */
      }
    }
    this.stopped.clear();
    await this.containerdUp();
  }

  async waitEvent(pred: (e: RecordedEvent) => boolean, timeoutMs: number): Promise<RecordedEvent | null> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const e = this.events.find(pred);
      if (e) return e;
      if (performance.now() > deadline) return null;
      await sleep(20);
    }
  }

  async close(): Promise<void> {
    for (const c of this.containers.values()) {
      c.stdio.close();
      for (const s of c.execStdio.values()) s.close();
    }
    for (const p of this.proxies.values()) await p.stop().catch(() => {});
    await this.factory?.stop().catch(() => {});
    await this.emu.close().catch(() => {});
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
