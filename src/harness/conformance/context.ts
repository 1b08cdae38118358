// What a check gets: tasks on fresh shims started by the containerd emulator,
// expectations that record what the shim answered (for --compare), and the
// clean-up containerd would do afterwards.
import fs from "node:fs";
import path from "node:path";
import type { ContainerdEmulator } from "../emulator";
import { ShimRunner, type ShimTask } from "../shim-runner";
import type { ServiceClient } from "../../ttrpc/service";
import { Sandbox as SandboxDef } from "../../gen/containerd.runtime.sandbox.v1";
import { PodSandboxConfig, NamespaceMode, type PodSandboxConfigInit } from "../../gen/runtime.v1";
import { Status_names } from "../../gen/containerd.v1.types";
import type { ClientStdio } from "../fifo";
import type { RecordedEvent } from "../events-server";
import { RpcError, codeName } from "../../ttrpc/status";
import { CheckFailure, CheckSkipped, type Observation } from "./types";
import { DIFFERENCES, type Profile } from "./profiles";

export const PROCESS_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/** Go's zero time, which runc's shim sends for "not exited" (rule exit.not-exited-time). */
export const GO_ZERO_SECONDS = -62135596800;

export interface TaskOptions {
  args: string[];
  stdin?: boolean;
  terminal?: boolean;
  /** No stdio at all (CRI's sandbox task). */
  nullIo?: boolean;
  annotations?: Record<string, string>;
  /** Start the shim only; no Create. */
  noCreate?: boolean;
  /** A chosen container id (one from newId()), e.g. when annotations must name it. */
  id?: string;
  /** stdout/stderr URIs of the check's own (file://, binary://) instead of the client's fifos. */
  stdout?: string;
  stderr?: string;
  /** A memory limit without swap, in bytes. */
  memoryLimit?: number;
}

/** A shim started for a sandbox as containerd 2.x's shim sandbox controller starts one. */
export interface SandboxHandle {
  id: string;
  bundle: string;
  shim: ShimTask;
  sandbox: ServiceClient<typeof SandboxDef>;
  /** The shim daemon's pid, from the bundle's shim.pid. */
  shimPid: number;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; code: number; message: string };

export function describeOutcome(o: Outcome<unknown>): string {
  return o.ok ? "OK" : `${codeName[o.code] ?? o.code}: ${o.message}`;
}

export interface TaskHandle {
  id: string;
  bundle: string;
  shim: ShimTask;
  task: ShimTask["task"];
  io: ClientStdio | null;
  /** Create's pid (0 with noCreate). */
  pid: number;
  /** The shim daemon's pid, from Connect. */
  shimPid: number;
}

export class CheckContext {
  readonly observations: Observation[] = [];
  private readonly handles: TaskHandle[] = [];
  private readonly sandboxes: SandboxHandle[] = [];
  /** The Sandbox service's definition, for a client on any shim connection. */
  readonly sandboxDef = SandboxDef;
  private n = 0;

  constructor(
    readonly emu: ContainerdEmulator,
    readonly profile: Profile,
    readonly rootfs: string,
    /** Short, unique per check: container ids are made from it. */
    readonly prefix: string,
  ) {}

  /** A host directory of this check's own, for files it hands the shim (gone with the emulator). */
  scratch(): string {
    const d = path.join(this.emu.dir, "scratch", this.prefix);
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  /** Polls until f gives a truthy value; CheckFailure naming what after timeoutMs. */
  async until<T>(what: string, f: () => T | null | undefined | false, timeoutMs = 10_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = f();
      if (v) return v;
      if (Date.now() > end) throw new CheckFailure(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(50);
    }
  }

  /** A container id unique to this check. */
  newId(): string {
    return `${this.prefix}-${this.n++}`;
  }

  /** A bundle, a fresh shim by the binary contract, and (unless noCreate) a created task. */
  async task(o: TaskOptions): Promise<TaskHandle> {
    const id = o.id ?? this.newId();
    const spec = this.emu.spec(id, { args: o.args, rootPath: this.rootfs, terminal: o.terminal, annotations: o.annotations, memoryLimit: o.memoryLimit, memorySwap: o.memoryLimit });
    // Under the emulator's private cgroup parent, so that nothing escapes clean-up.
    spec.linux!.cgroupsPath = `${this.emu.cgroupParent}/${id}`;
    const bundle = this.emu.bundle(id, spec);
    const shim = await this.emu.runner.start(id, bundle, { timeoutMs: 20_000 });
    const io = o.nullIo || o.stdout !== undefined ? null : this.emu.stdio(id, { stdin: o.stdin || o.terminal, terminal: o.terminal });
    const h: TaskHandle = { id, bundle, shim, task: shim.task, io, pid: 0, shimPid: 0 };
    this.handles.push(h);
    const c = await shim.task.Connect({ id }).catch(() => null);
    h.shimPid = c?.shimPid ?? 0;
    if (!o.noCreate) {
      const r = await shim.task.Create({ id, bundle, terminal: !!o.terminal, stdin: io?.stdin ?? "", stdout: o.stdout ?? io?.stdout ?? "", stderr: o.stderr ?? io?.stderr ?? "" });
      h.pid = r.pid;
    }
    return h;
  }

  /**
   * A shim for a sandbox, as containerd 2.x's shim controller makes one: a
   * bundle with no config.json (NewBundle without a spec), `start` as 2.1
   * runs it (the Sandbox API is 2.x's; a 2.x emulator's own way if it plays
   * one), and a Sandbox client on the address it answers. With create, the
   * sandbox is created as CRI creates it: the pod's PodSandboxConfig
   * (host network, the emulator's cgroup parent) in options.
   */
  async sandboxShim(o: { id?: string; create?: boolean; start?: boolean } = {}): Promise<SandboxHandle> {
    const id = o.id ?? this.newId();
    const bundle = path.join(this.emu.bundlesDir(), id);
    fs.mkdirSync(path.join(bundle, "rootfs"), { recursive: true, mode: 0o711 });
    const ro = this.emu.runner.o;
    const c2 = ro.containerd2 && ro.containerd2.series !== "1.7" ? ro.containerd2 : { series: "2.1" as const };
    const runner = new ShimRunner({ ...ro, containerd2: c2 });
    const shim = await runner.start(id, bundle, { timeoutMs: 20_000 });
    const sandbox = (shim.client as { service: (d: typeof SandboxDef, c?: object) => ServiceClient<typeof SandboxDef> }).service(SandboxDef, { timeoutMs: 20_000 });
    const pidFile = path.join(bundle, "shim.pid");
    const h: SandboxHandle = { id, bundle, shim, sandbox, shimPid: fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, "utf8")) : 0 };
    this.sandboxes.push(h);
    if (o.create || o.start) await sandbox.CreateSandbox(this.createSandboxRequest(h));
    if (o.start) await sandbox.StartSandbox({ sandboxId: id });
    return h;
  }

  /** CreateSandbox as CRI sends it for a host-network pod (no netns path). */
  createSandboxRequest(h: Pick<SandboxHandle, "id" | "bundle">) {
    const config: PodSandboxConfigInit = {
      metadata: { name: `conf-${h.id}`, namespace: "conformance", uid: `uid-${h.id}`, attempt: 0 },
      hostname: `conf-${h.id}`.slice(0, 63),
      linux: { cgroupParent: this.emu.cgroupParent, securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.POD, ipc: NamespaceMode.POD } } },
    };
    return { sandboxId: h.id, bundlePath: h.bundle, rootfs: [], options: { typeUrl: PodSandboxConfig.typeName, value: Buffer.from(PodSandboxConfig.encode(config)) }, netnsPath: "", annotations: {} };
  }

  /** A created and started task. */
  async running(o: TaskOptions): Promise<TaskHandle> {
    const h = await this.task(o);
    await h.task.Start({ id: h.id });
    return h;
  }

  async exec(h: TaskHandle, execId: string, args: string[], o: { stdio?: boolean; terminal?: boolean; stdin?: boolean } = {}): Promise<ClientStdio | null> {
    const io = o.stdio ? this.emu.stdio(`${h.id}-${execId}`, { stdin: o.stdin || o.terminal, terminal: o.terminal }) : null;
    const spec = { args, cwd: "/", user: { uid: 0, gid: 0 }, terminal: !!o.terminal, env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] };
    await h.task.Exec({
      id: h.id,
      execId,
      terminal: !!o.terminal,
      stdin: io?.stdin ?? "",
      stdout: io?.stdout ?? "",
      stderr: io?.stderr ?? "",
      spec: { typeUrl: PROCESS_URL, value: Buffer.from(JSON.stringify(spec)) },
    });
    return io;
  }

  /** Settles p into an outcome and records it under key. */
  async outcome<T>(key: string, p: Promise<T>, documented?: string): Promise<Outcome<T>> {
    const o: Outcome<T> = await p.then(
      (value) => ({ ok: true as const, value }),
      (e: unknown) => (e instanceof RpcError ? { ok: false as const, code: e.code, message: e.message } : { ok: false as const, code: -1, message: String((e as Error)?.message ?? e) }),
    );
    this.observe(key, o.ok ? "OK" : (codeName[o.code] ?? `code ${o.code}`), documented);
    return o;
  }

  /** Expects the call to succeed; returns its answer. */
  async ok<T>(key: string, p: Promise<T>): Promise<T> {
    const o = await this.outcome(key, p);
    if (!o.ok) throw new CheckFailure(`${key}: want OK, got ${describeOutcome(o)}`);
    // States and exit statuses go into the record too, so --compare shows them side by side.
    const v = o.value as { status?: unknown; bundle?: unknown; exitStatus?: unknown } | undefined;
    if (v && typeof v === "object") {
      if (typeof v.status === "number" && "bundle" in v) this.observe(`${key} → status`, `${Status_names[v.status] ?? v.status} exit_status ${v.exitStatus ?? 0}`);
      else if (typeof v.exitStatus === "number") this.observe(`${key} → exit_status`, v.exitStatus);
    }
    return o.value;
  }

  /** Expects the call to fail with code (and, when given, a message matching). */
  async fails(key: string, p: Promise<unknown>, code: number, documented?: string, message?: RegExp): Promise<string> {
    const o = await this.outcome(key, p, documented);
    if (o.ok || o.code !== code) throw new CheckFailure(`${key}: want ${codeName[code]}, got ${describeOutcome(o)}`);
    if (message && !message.test(o.message)) throw new CheckFailure(`${key}: want a message matching ${message}, got ${JSON.stringify(o.message)}`);
    return `${key} → ${describeOutcome(o)}`;
  }

  /** An illegal state move, answered with the profile's code. */
  illegal(key: string, p: Promise<unknown>): Promise<string> {
    return this.fails(key, p, this.profile.illegalStateCode, this.profile.illegalStateCode === 2 ? undefined : "illegal-state-code");
  }

  /** A documented difference every observation of this check depends on (a whole API a profile serves or not). */
  profileDependent?: string;

  observe(key: string, value: unknown, documented = this.profileDependent): void {
    if (documented && !DIFFERENCES[documented]) throw new Error(`undocumented difference name ${documented}`);
    this.observations.push({ key, value: typeof value === "string" ? value : JSON.stringify(value), documented });
  }

  expect(cond: unknown, message: string): void {
    if (!cond) throw new CheckFailure(message);
  }

  equal<T>(what: string, got: T, want: T): void {
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new CheckFailure(`${what}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }

  skip(reason: string): never {
    throw new CheckSkipped(reason);
  }

  /** Events for one container, in arrival order. */
  events(id: string): RecordedEvent[] {
    return this.emu.events.forContainer(id);
  }

  waitEvent(id: string, topic: string, pred: (e: RecordedEvent) => boolean = () => true, timeoutMs = 5_000): Promise<RecordedEvent> {
    return this.emu.events.waitFor((e) => e.event.containerId === id && e.topic === topic && pred(e), timeoutMs, `${topic} for ${id}`);
  }

  /** Lets events already sent arrive (the shim publishes asynchronously, in order). */
  async settleEvents(ms = 300): Promise<void> {
    await sleep(ms);
  }

  /** Topics for a container, with the container id (and exec ids) written generically. */
  topics(id: string): string[] {
    return this.events(id).map((e) => e.topic + (e.event.id && e.event.id !== id ? `(${e.event.id})` : e.event.execId ? `(${e.event.execId})` : ""));
  }

  /** Each task's whole event sequence (check and clean-up), recorded for --compare. */
  recordEventSequences(): void {
    this.handles.forEach((h, i) => this.observe(`events of task ${i}`, this.topics(h.id).join(" ") || "(none)"));
  }

  /** What containerd does after a task (the emulator's teardown); a shim that will not exit is killed and noted. */
  async cleanup(): Promise<string[]> {
    const notes: string[] = [];
    // Sandboxes: containerd's shim controller stops and shuts down the sandbox, closes the
    // connection and removes the bundle; a shim that is still running after that has leaked.
    for (const h of [...this.sandboxes].reverse()) {
      const r = await this.emu.teardownSandbox(
        { id: h.id, bundle: h.bundle, address: h.shim.address, sandbox: h.shim.client.isClosed ? undefined : h.sandbox, close: () => h.shim.close(), shimPid: h.shimPid },
        { callMs: 15_000, reapMs: 10_000, shimDelete: "unclean" },
      );
      notes.push(...r.notes);
      fs.rmSync(h.bundle, { recursive: true, force: true });
    }
    const r = await this.emu.teardown(
      this.handles.map((h) => ({ id: h.id, bundle: h.bundle, address: h.shim.address, task: h.shim.client.isClosed ? undefined : h.task, shimPid: h.shimPid, close: () => (h.shim.close(), h.io?.close()) })),
      { reapMs: 10_000 },
    );
    return [...notes, ...r.notes];
  }
}

// Where they lived before the one teardown; checks still import them from here.
export { alive, exited, socketPath } from "../teardown";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
