// A containerd stand-in for one shim binary: an events endpoint, bundles,
// client stdio and the binary contract, in a private directory.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EventsServer } from "./events-server";
import { ShimRunner, type ShimTask, type ShimBinaryOptions, type Containerd2Options } from "./shim-runner";
import { createBundle, defaultSpec, type SpecOptions } from "./bundle";
import { clientStdio, type ClientStdio } from "./fifo";
import type { OciSpec } from "../oci/spec";

export interface EmulatorOptions {
  binary: string;
  namespace?: string;
  /** Private working directory; a temporary one by default. */
  dir?: string;
  env?: NodeJS.ProcessEnv;
  debug?: boolean;
  stdin?: Buffer;
  /** Play containerd 2.x (bootstrap params on stdin, task v3, gRPC or ttrpc). */
  containerd2?: Containerd2Options;
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

export class ContainerdEmulator {
  readonly dir: string;
  readonly namespace: string;
  readonly events: EventsServer;
  readonly runner: ShimRunner;
  /** The "containerd address" the shim hashes into its socket name: unique per emulator. */
  readonly address: string;
  private readonly tasks: ShimTask[] = [];
  private readonly stdios: ClientStdio[] = [];

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
      containerd2: o.containerd2 ?? containerd2FromEnv(),
    };
    this.runner = new ShimRunner(ro);
  }

  get cgroupParent(): string {
    return `/shimlab-${path.basename(this.dir)}`;
  }

  async start(): Promise<void> {
    await this.events.listen();
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
    for (const s of this.stdios) s.close();
    await this.events.close();
    if (!this.o.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
