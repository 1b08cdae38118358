// The containerd side of a scenario, built from the harness pieces: an
// events endpoint that can go down and come back, bundles, client stdio, one
// shim per pod reached (optionally) through a fault proxy, and handles on the
// processes a fault may kill or pause.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EventsServer, type RecordedEvent } from "../harness/events-server";
import { ShimRunner } from "../harness/shim-runner";
import { createBundle, defaultSpec } from "../harness/bundle";
import { clientStdio, mkfifo, type ClientStdio } from "../harness/fifo";
import { MOCK_AGENT_SCRIPT, SHIM_DAEMON_SCRIPT, listProcesses, shimlabProcesses } from "../harness/leaks";
import { FP_SHIM_BINARY, SHIM_BINARY } from "../harness/containerd";
import { Client } from "../ttrpc/client";
import { Task } from "../gen/containerd.task.v2";
import { Sandbox as SandboxDef } from "../gen/containerd.runtime.sandbox.v1";
import { NamespaceMode, PodSandboxConfig } from "../gen/runtime.v1";
import type { ServiceClient } from "../ttrpc/service";
import { Code, RpcError } from "../ttrpc/status";
import { FaultProxy } from "../faults/proxy";
import type { Toxic } from "../faults/toxics";
import { EVENT_FAULTS_ENV, type EventFaultRule } from "../faults/event-faults";
import { QEMU_HARNESS_SETTINGS } from "../harness/qemu-config";
import { MUTANTS_ENV } from "../faults/mutants";
import { launchFaults, needsFpShim, needsShimLinkProxy, type FaultWorld, type ShimLaunch } from "../faults/kinds";
import { SANDBOX_API_POD } from "./load";
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
  client?: { close(): void };
  svc?: ServiceClient<typeof SandboxDef>;
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
  task?: ServiceClient<typeof Task>;
  /** Only closed by the runner: ttrpc here, or gRPC when the harness plays containerd 2.x. */
  client?: { close(): void };
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
  readonly address: string;
  readonly eventsPath: string;
  readonly runner: ShimRunner;
  readonly events: (RecordedEvent & { time: number })[] = [];
  readonly containers = new Map<string, ContainerHandle>();
  readonly sandboxId: string;
  /** Set when the scenario has sandbox_api. */
  readonly pod: SandboxApiPod | null;
  private server: EventsServer | null = null;
  private readonly proxies = new Map<string, FaultProxy>();
  private readonly linkToxics: Toxic[] = [];
  private readonly t0: number;
  /** Forward faults: answer Unavailable, or hold each Forward for ms (Infinity: until healed). */
  forwardFault: { action: "unavailable" | "delay"; ms: number } | null = null;
  private forwardHeld: (() => void)[] = [];
  down = false;
  /** With a real containerd (the containerd driver), going down and up is its business. */
  hooks: { down(): Promise<void>; up(): Promise<void> } | null = null;
  readonly stopped = new Set<number>();
  readonly useProxy: boolean;
  /**
   * The shim injects some of this run's faults itself (task failpoints, event faults, agent-link
   * toxics, mutants): only the failpoint shim does, so it runs instead of the production one.
   */
  readonly fpShim: boolean;

  constructor(
    readonly scenario: Scenario,
    readonly o: WorldOptions = {},
    t0 = performance.now(),
  ) {
    this.t0 = t0;
    // Short: the shim's socket name is a hash, but fifos and the agent's socket live under here.
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "scn-"));
    this.address = path.join(this.dir, "containerd.sock");
    this.eventsPath = this.address + ".ttrpc";
    this.sandboxId = scenario.sandbox_api ? SANDBOX_API_POD : Object.keys(scenario.containers)[0];
    this.pod = scenario.sandbox_api ? { id: SANDBOX_API_POD, bundle: path.join(this.dir, "bundles", SANDBOX_API_POD), shutdown: false } : null;
    this.useProxy = needsShimLinkProxy(scenario.faults);
    this.fpShim = needsFpShim(scenario.faults) || !!o.mutants?.length || !!o.eventFaults?.length;
    this.runner = new ShimRunner({
      binary: o.binary ?? (this.fpShim ? FP_SHIM_BINARY : SHIM_BINARY),
      namespace: this.namespace,
      address: this.address,
      ttrpcAddress: this.eventsPath,
      debug: o.debug,
      env: this.shimEnv(),
      timeoutMs: 20_000,
    });
  }

  get cgroupParent(): string {
    return `/shimlab-${path.basename(this.dir)}`;
  }

  now(): number {
    return Math.round((performance.now() - this.t0) * 10) / 10;
  }

  /** The shim's environment: where it may put things, and the faults fixed at its start. */
  shimEnv(): NodeJS.ProcessEnv {
    const s = this.scenario;
    const env: NodeJS.ProcessEnv = { SHIMLAB_CGROUP_PARENT: this.cgroupParent, SHIMLAB_RUN_DIR: path.join(this.dir, "run") };
    Object.assign(env, this.faultLaunch().env);
    if (this.o.mutants?.length) env[MUTANTS_ENV] = this.o.mutants.join(",");
    const cfg = { ...s.shim_config, ...this.o.config };
    const qemu = this.scenario.shim_config?.hypervisor === "qemu";
    if (cfg.dial_timeout_ms || qemu) {
      const f = path.join(this.dir, "shimlab.toml");
      const lines = [`hypervisor = "${qemu ? "qemu" : "none"}"`];
      if (cfg.dial_timeout_ms) lines.push("[agent]", `dial_timeout_ms = ${cfg.dial_timeout_ms}`);
      // The sandbox reads the guest image's manifest; start() below builds the image first.
      if (qemu) lines.push("[qemu]", ...QEMU_HARNESS_SETTINGS);
      fs.writeFileSync(f, lines.join("\n") + "\n");
      env.SHIMLAB_CONFIG = f;
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
    await this.eventsUp();
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
      const spec = defaultSpec(id, {
        namespace: this.namespace,
        args: def.args,
        env: def.env,
        terminal: def.terminal,
        rootPath: this.rootfs,
        annotations,
        memoryLimit: def.memory_limit,
      });
      const bundle = createBundle(path.join(this.dir, "bundles"), id, spec);
      const stdio =
        def.stdout === "never-open"
          ? neverOpenedStdio(this.dir, id, !!def.stdin)
          : def.stdout === "none"
            ? { ...neverOpenedStdio(this.dir, id, false), stdout: "", stderr: "" }
            : clientStdio(id, { stdin: def.stdin, terminal: def.terminal, base: this.dir });
      this.containers.set(id, { id, def, bundle, stdio, execStdio: new Map() });
    }
  }

  rootfs = "";

  // ---- containerd's events endpoint ----

  private async eventsUp(): Promise<void> {
    const srv = new EventsServer(this.eventsPath);
    srv.use(async (_call, next) => {
      const f = this.forwardFault;
      if (f?.action === "unavailable") throw new RpcError(Code.Unavailable, "containerd events service unavailable (scenario fault)");
      if (f?.action === "delay") await new Promise<void>((r) => {
        this.forwardHeld.push(r);
        if (Number.isFinite(f.ms)) setTimeout(r, f.ms);
      });
      return next();
    });
    srv.on("event", (e: RecordedEvent) => this.events.push({ ...e, seq: this.events.length, time: this.now() }));
    await srv.listen();
    this.server = srv;
  }

  releaseForward(): void {
    for (const r of this.forwardHeld.splice(0)) r();
  }

  /** containerd goes away: no events endpoint, no connections to the shims. */
  async containerdDown(): Promise<void> {
    if (this.down) return;
    this.down = true;
    if (this.hooks) return this.hooks.down();
    const s = this.server;
    this.server = null;
    await s?.close();
    for (const c of this.containers.values()) {
      c.client?.close();
      c.client = undefined;
      c.task = undefined;
    }
    if (this.pod) {
      this.pod.client?.close();
      this.pod.client = undefined;
      this.pod.svc = undefined;
    }
  }

  /** containerd is back: events served again, shims reconnected by their address files' addresses. */
  async containerdUp(): Promise<void> {
    if (!this.down) return;
    if (this.hooks) {
      await this.hooks.up();
      this.down = false;
      return;
    }
    await this.eventsUp();
    this.down = false;
    await this.connectPod().catch(() => {
      /* the shim may be gone; calls will say so */
    });
    for (const c of this.containers.values()) {
      if (!c.address) continue;
      try {
        await this.connect(c, c.address);
      } catch {
        /* the shim may be gone; calls will say so */
      }
    }
  }

  /** containerd drops its connections to the shims and dials them again (as after a broken link). */
  async reconnect(): Promise<void> {
    this.pod?.client?.close();
    await this.connectPod();
    for (const c of this.containers.values()) {
      if (!c.address) continue;
      c.client?.close();
      await this.connect(c, c.address);
    }
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
    pod.client = t.client;
    pod.svc = (t.client as Client).service(SandboxDef);
    return pod;
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

  /** containerd (back) on the pod's shim: its Sandbox client. */
  private async connectPod(): Promise<void> {
    const pod = this.pod;
    if (!pod?.address || pod.shutdown) return;
    const client = await Client.dial(pod.address, { connectTimeoutMs: 5_000 });
    pod.client = client;
    pod.svc = client.service(SandboxDef);
  }

  /** A container of a Sandbox API pod: containerd connects to the pod's shim (task API version 3), no `start`. */
  async joinPod(c: ContainerHandle): Promise<void> {
    const pod = this.pod!;
    if (!pod.address) throw new RpcError(Code.FailedPrecondition, `sandbox ${pod.id} has no shim yet (create-sandbox first)`);
    c.address = pod.address;
    await this.connect(c, pod.address);
  }

  /** `start` for this container's bundle (the pod's shim answers for every container). */
  async startShim(c: ContainerHandle): Promise<void> {
    const t = await this.runner.start(c.id, c.bundle);
    c.address = t.address;
    if (this.useProxy) {
      t.close();
      await this.connect(c, t.address);
    } else {
      c.client = t.client;
      c.task = t.task;
    }
  }

  private async connect(c: ContainerHandle, address: string): Promise<void> {
    let target = address;
    if (this.useProxy) {
      const sock = address.replace(/^unix:\/\//, "");
      let p = this.proxies.get(sock);
      if (!p) {
        p = new FaultProxy({ listen: path.join(this.dir, `link-${this.proxies.size}.sock`), upstream: sock });
        for (const t of this.linkToxics) p.addToxic(t);
        await p.start();
        this.proxies.set(sock, p);
      }
      target = p.o.listen;
    }
    const client = await Client.dial(target, { connectTimeoutMs: 5_000 });
    c.client = client;
    c.task = client.service(Task);
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

  pidsOf(target: string): number[] {
    const mine = shimlabProcesses([this.dir]);
    if (target === "shim") return mine.filter((p) => SHIM_DAEMON_SCRIPT.test(p.cmdline)).map((p) => p.pid);
    if (target === "agent") return mine.filter((p) => MOCK_AGENT_SCRIPT.test(p.cmdline)).map((p) => p.pid);
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
    const pids = this.pidsOf(target);
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
      c.client?.close();
      c.stdio.close();
      for (const s of c.execStdio.values()) s.close();
    }
    for (const p of this.proxies.values()) await p.stop().catch(() => {});
    await this.server?.close().catch(() => {});
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
