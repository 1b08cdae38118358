// The containerd stand-in, the one every harness user plays containerd with
// (conformance checks, scenarios, the demo, the tests): an events endpoint,
// bundles, client stdio and the binary contract, in a private directory. Its
// hook points are what faults need of containerd's side: an interceptor on
// the events endpoint (Forward faults), containerd going down and coming back
// (the endpoint closed and reopened, its links to shims dropped and redialled
// from their addresses), a proxy between it and a shim's socket (the
// containerd-link faults), and one teardown of tasks as containerd does it.
import fs from "node:fs";
import { removeCgroupTree } from "../util/cgroup";
import os from "node:os";
import path from "node:path";
import { EventsServer } from "./events-server";
import { ShimRunner, ShimTask, type ShimBinaryOptions, type Containerd2Options } from "./shim-runner";
import { createBundle, defaultSpec, type SpecOptions } from "./bundle";
import { clientStdio, type ClientStdio } from "./fifo";
import { ShimLink } from "./shim-link";
import { teardownSandbox, teardownTasks, type HeldSandbox, type HeldTask, type SandboxTeardownOptions, type TeardownOptions, type TeardownResult } from "./teardown";
import { Client } from "../ttrpc/client";
import type { Interceptor } from "../ttrpc/server";
import type { OciSpec } from "../oci/spec";

export interface EmulatorOptions {
  binary: string;
  namespace?: string;
  /** Private working directory; a temporary one by default. */
  dir?: string;
  env?: NodeJS.ProcessEnv;
  debug?: boolean;
  stdin?: Buffer;
  /** Play containerd 2.x (bootstrap params on stdin, task v3, gRPC or ttrpc); null: 1.6, whatever SHIMLAB_EMULATE says. */
  containerd2?: Containerd2Options | null;
  /** How long the shim binary's `start` and `delete` may take. */
  timeoutMs?: number;
  /**
   * The containerd-link hook: given a shim's socket, the path containerd dials
   * instead (a fault proxy in front of it). Links made by link() and redials go through it.
   */
  linkProxy?: (socket: string) => Promise<string>;
}

/**
 * SHIMLAB_EMULATE plays another containerd in every emulator that does not
 * choose, so that a whole suite (e.g. the Task API tests) runs unchanged:
 *   1.6 (the default), 1.7, 2.1    as those versions run a shim that asks for nothing
 *   2.1-ttrpc                     2.1 with shimlab asked for task v3 over ttrpc
 *   2.3-ttrpc, 2.3-grpc           2.3's BootstrapParams on stdin, task v3 (2.x-* are the old names)
 */
export function containerd2FromEnv(env = process.env): Containerd2Options | undefined {
  const v = env.SHIMLAB_EMULATE;
  if (!v || v === "1.6") return undefined;
  if (v === "1.7" || v === "2.1") return { series: v };
  if (v === "2.1-ttrpc") return { series: "2.1", protocol: "ttrpc" };
  const m = /^2\.(?:x|3)-(ttrpc|grpc)$/.exec(v);
  if (!m) throw new Error(`SHIMLAB_EMULATE=${JSON.stringify(v)}: want 1.6, 1.7, 2.1, 2.1-ttrpc, 2.3-ttrpc or 2.3-grpc`);
  return { series: "2.3", params: "binary", protocol: m[1] as "ttrpc" | "grpc" };
}

/**
 * The cgroup parent a stand-in's shims put their containers under. Cgroups are host-wide: a
 * directory made straight in the temp dir (mkdtemp) names it alone, and one the caller chose
 * (the demo's ".../containerd") is told apart by its parent's name too, so that two runs at once
 * (two copies of the suite, two demos) never share a parent and never kill each other's containers.
 */
export function cgroupParentFor(dir: string): string {
  const d = path.resolve(dir);
  const parent = path.dirname(d);
  return parent === path.resolve(os.tmpdir()) ? `/shimlab-${path.basename(d)}` : `/shimlab-${path.basename(parent)}-${path.basename(d)}`;
}

export class ContainerdEmulator {
  readonly dir: string;
  readonly namespace: string;
  readonly events: EventsServer;
  readonly runner: ShimRunner;
  /** The "containerd address" the shim hashes into its socket name: unique per emulator. */
  readonly address: string;
  private readonly tasks: ShimTask[] = [];
  private readonly stdios: ClientStdio[] = [];
  private readonly links = new Set<ShimLink>();
  /** containerd is down: no events endpoint, no links to shims. */
  down = false;

  constructor(readonly o: EmulatorOptions) {
    this.dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-emu-"));
    fs.mkdirSync(this.dir, { recursive: true });
    this.namespace = o.namespace ?? "default";
    this.address = path.join(this.dir, "containerd.sock");
    this.events = new EventsServer(path.join(this.dir, "containerd.sock.ttrpc"));
    // Its own cgroup parent and run dir, so that concurrent runs never see each other's containers.
    const env = { SHIMLAB_CGROUP_PARENT: this.cgroupParent, SHIMLAB_RUN_DIR: path.join(this.dir, "run"), ...o.env };
    const ro: ShimBinaryOptions = {
      binary: o.binary,
      namespace: this.namespace,
      address: this.address,
      ttrpcAddress: this.events.socketPath,
      debug: o.debug,
      env,
      stdin: o.stdin,
      containerd2: o.containerd2 === null ? undefined : (o.containerd2 ?? containerd2FromEnv()),
      timeoutMs: o.timeoutMs,
    };
    this.runner = new ShimRunner(ro);
  }

  get cgroupParent(): string {
    return cgroupParentFor(this.dir);
  }

  async start(): Promise<void> {
    await this.events.listen();
  }

  /** The events hook: an interceptor on every Forward (faults there: Unavailable, a delay). */
  interceptEvents(i: Interceptor): this {
    this.events.use(i);
    return this;
  }

  /** containerd goes away: its events endpoint closes and its links to shims drop. */
  async containerdDown(): Promise<void> {
    if (this.down) return;
    this.down = true;
    await this.events.close();
    for (const l of this.links) l.drop();
  }

  /** containerd is back: events served again, shims redialled from their addresses (one that is gone stays unlinked). */
  async containerdUp(): Promise<void> {
    if (!this.down) return;
    await this.events.listen();
    this.down = false;
    for (const l of this.links) {
      if (l.retired) continue;
      await l.redial().catch(() => {
        /* the shim may be gone; calls will say so */
      });
    }
  }

  /** containerd drops its links to the shims and dials them again (as after a broken link). */
  async reconnect(): Promise<void> {
    for (const l of this.links) if (!l.retired) await l.redial();
  }

  /** A ttrpc connection to a shim's address, through the link hook when there is one. */
  async dial(address: string): Promise<Client> {
    const sock = address.replace(/^unix:\/\//, "");
    return Client.dial(this.o.linkProxy ? await this.o.linkProxy(sock) : sock, { connectTimeoutMs: 5_000 });
  }

  /**
   * containerd's link to a started shim: the task's own connection, or (with
   * the link hook) a new one through it. Kept across containerd down/up.
   * direct: never through the link hook.
   */
  linkTo(t: ShimTask, o: { direct: true }): ShimLink;
  linkTo(t: ShimTask, o?: { direct?: boolean }): Promise<ShimLink>;
  linkTo(t: ShimTask, o: { direct?: boolean } = {}): ShimLink | Promise<ShimLink> {
    const add = (l: ShimLink) => (this.links.add(l), l);
    if (o.direct || !this.o.linkProxy) {
      const dialer = o.direct ? (a: string) => Client.dial(a, { connectTimeoutMs: 5_000 }) : (a: string) => this.dial(a);
      const l = add(new ShimLink(t.address, t.client, dialer, t.taskDef));
      return o.direct ? l : Promise.resolve(l);
    }
    t.close();
    return this.dial(t.address).then((c) => add(new ShimLink(t.address, c, (a) => this.dial(a), t.taskDef)));
  }

  /** A new link to a shim already started (a pod's shim that a task joins). */
  async link(address: string): Promise<ShimLink> {
    const l = new ShimLink(address, await this.dial(address), (a) => this.dial(a));
    this.links.add(l);
    return l;
  }

  /** Takes tasks down as containerd does (teardown.ts), with this emulator's `delete`. */
  teardown(tasks: (HeldTask | ShimTask)[], o: TeardownOptions = {}): Promise<TeardownResult> {
    return teardownTasks(tasks.map(held), (id, bundle) => this.runner.delete(id, bundle), o);
  }

  /** A Sandbox API pod's end (StopSandbox, ShutdownSandbox), with this emulator's `delete`. */
  teardownSandbox(h: HeldSandbox, o: SandboxTeardownOptions = {}): Promise<TeardownResult> {
    return teardownSandbox(h, (id, bundle) => this.runner.delete(id, bundle), o);
  }

  bundlesDir(): string {
    const d = path.join(this.dir, "bundles", this.namespace);
    fs.mkdirSync(d, { recursive: true, mode: 0o711 });
    return d;
  }

  bundle(id: string, spec: OciSpec): string {
    return createBundle(this.bundlesDir(), id, spec, path.join(this.dir, "root", this.namespace, id));
  }

  spec(id: string, o: SpecOptions): OciSpec {
    return defaultSpec(id, { namespace: this.namespace, ...o });
  }

  stdio(id: string, o: { stdin?: boolean; terminal?: boolean } = {}): ClientStdio {
    const s = clientStdio(id, { ...o, base: this.dir });
    this.stdios.push(s);
    return s;
  }

  async startShim(id: string, bundle: string): Promise<ShimTask> {
    const t = await this.runner.start(id, bundle);
    this.tasks.push(t);
    return t;
  }

  /**
   * `ctr run --rm --rootfs <rootfs> <id> <args>` as containerd 1.6-2.1 carry it
   * out against a shim (the same calls in every version, as the real ones
   * showed: test/integration/emulator-fidelity.test.ts): start, Create with
   * the three fifos, Connect for the task's pid, then ctr's Start beside its
   * Wait (each asking the pid again first), State twice once the task has
   * exited, Delete, Shutdown, and the `delete` binary. Returns what ctr prints
   * and its exit status.
   */
  async ctrRun(id: string, rootfs: string, args: string[]): Promise<{ exitStatus: number; stdout: string; stderr: string }> {
    const bundle = this.bundle(id, this.spec(id, { args, rootPath: rootfs }));
    const io = this.stdio(id, { stdin: true });
    const t = await this.startShim(id, bundle).catch((e) => {
      // containerd removes the bundle of a shim it could not start (and runs no `delete`).
      fs.rmSync(bundle, { recursive: true, force: true });
      throw e;
    });
    try {
      await t.task.Create({ id, bundle, stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, terminal: false, rootfs: [] });
      await t.task.Connect({ id });
      const waited = t.task.Connect({ id }).then(() => t.task.Wait({ id }));
      await t.task.Start({ id });
      const { exitStatus } = await waited;
      await io.drained();
      await t.task.State({ id });
      await t.task.State({ id });
      await t.task.Delete({ id });
      await t.task.Shutdown({ id });
      return { exitStatus, stdout: io.out(), stderr: io.err() };
    } finally {
      t.close();
      await this.runner.delete(id, bundle);
    }
  }

  /** Closes connections, stops the events endpoint and removes the directory. */
  async close(): Promise<void> {
    for (const t of this.tasks) t.close();
    for (const l of this.links) l.drop();
    for (const s of this.stdios) s.close();
    await this.events.close();
    if (!this.o.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    // Its cgroup parent is its own (cgroupParentFor): the empty directories go with it; one still
    // holding a container stays, for a leak check to see.
    removeCgroupTree(this.cgroupParent);
  }
}

/** A ShimTask as teardown holds it: no calls once its connection is closed. */
function held(t: HeldTask | ShimTask): HeldTask {
  if (!(t instanceof ShimTask)) return t;
  return { id: t.id, bundle: t.bundle, address: t.address, task: t.client.isClosed ? undefined : t.task, close: () => t.close() };
}
