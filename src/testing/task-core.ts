// The shim's core, whole, in one process and without root: the Task service
// served over ttrpc on a unix socket as containerd would reach it, events into
// a RecordingSink, sandboxes on the InProcessHypervisor (the mock agent in
// this process, containers as host processes). Everything it makes lives in
// one temporary directory that close() removes, after the sandbox's agent
// has killed and reaped what it ran.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, Writable } from "node:stream";
import { Client } from "../ttrpc/client";
import { Server } from "../ttrpc/server";
import type { ServiceClient } from "../ttrpc/service";
import { Task } from "../gen/containerd.task.v2";
import { TaskService } from "../shim/task-service";
import type { ShimConfig } from "../shim/config";
import type { OciProcess, OciSpec } from "../oci/spec";
import type { ProcessIO, StdioPaths } from "../pod/process";
import { FdLogger, nullLogger, type Logger } from "../util/logger";
import { InProcessHypervisor, type InProcessOptions } from "./in-process-hypervisor";
import { RecordingSink } from "./recording-sink";

export const PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";

export interface TaskCoreOptions extends InProcessOptions {
  namespace?: string;
  /** The shim's id (containerd's -id); the first task's, by default "shim". */
  shimId?: string;
}

export interface BundleOptions {
  args: string[];
  annotations?: Record<string, string>;
  env?: string[];
}

export interface TaskCore {
  /** The Task API as containerd calls it: over ttrpc, one connection. */
  readonly task: ServiceClient<typeof Task>;
  readonly service: TaskService;
  readonly events: RecordingSink;
  readonly hypervisor: InProcessHypervisor;
  /** The temporary directory everything lives in. */
  readonly dir: string;
  /** How many times the service asked the shim to exit (Shutdown with nothing left). */
  readonly shutdowns: number;
  /** Writes a bundle (config.json and an empty rootfs directory) and returns its path. */
  bundle(id: string, o: BundleOptions): string;
  /** What a process wrote to the stdout or stderr path given at Create or Exec (any name: the streams are in memory). */
  output(stdioPath: string): string;
  /**
   * The client's end of the stdin path given at Create or Exec: what is written reaches the
   * process; CloseIO{stdin} ends it, as the shim closing its own writer of a fifo would.
   */
  input(stdioPath: string): Writable;
  /** An exec's spec as containerd sends it: an Any holding the OCI Process as JSON. */
  execSpec(args: string[]): { typeUrl: string; value: Buffer };
  close(): Promise<void>;
}

/** Sandbox run dirs follow SHIMLAB_RUN_DIR (hypervisor/rundir.ts): it points into the core's directory while one is open. */
const RUN_DIR_ENV = "SHIMLAB_RUN_DIR";

export async function startTaskCore(o: TaskCoreOptions = {}): Promise<TaskCore> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-core-"));
  const previousRunDir = process.env[RUN_DIR_ENV];
  process.env[RUN_DIR_ENV] = path.join(dir, "run");
  const logger: Logger = o.logger ?? (process.env.SHIMLAB_CORE_LOG ? new FdLogger(2, "debug") : nullLogger);
  const hypervisor = new InProcessHypervisor({ runtime: o.runtime, logger });
  const config: ShimConfig = {
    source: "in-process (testing)",
    hypervisorKind: "none",
    agentRuntime: "host",
    dialTimeoutMs: 5_000,
    debug: false,
    qemu: {},
    factory: { enable: false, socket: "", poolSize: 0, daemonPoolSize: 0 },
    env: process.env,
    hypervisor: () => hypervisor,
    warmer: () => {
      throw new Error("an in-process task core has no factory");
    },
  };
  const events = new RecordingSink();
  const outputs = new Map<string, Buffer[]>();
  const sink = (p: string): Writable | null => {
    if (!p) return null;
    const chunks: Buffer[] = [];
    outputs.set(p, chunks);
    return new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(Buffer.from(chunk));
        cb();
      },
    });
  };
  const inputs = new Map<string, PassThrough>();
  const source = (p: string): PassThrough | null => {
    if (!p) return null;
    const s = new PassThrough();
    // process.ts's CloseIO path: the shim lets go of the stream, and end of file follows once the client's writes are read.
    (s as PassThrough & { closeWriter?: () => void }).closeWriter = () => s.end();
    inputs.set(p, s);
    return s;
  };
  let shutdowns = 0;
  const service = new TaskService({
    namespace: o.namespace ?? "testing",
    shimId: o.shimId ?? "shim",
    events,
    logger,
    config,
    onShutdown: () => void shutdowns++,
    // Client streams in memory: the fifos and files containerd would give are io.ts's own concern.
    openIO: (paths: StdioPaths): ProcessIO => ({ stdin: source(paths.stdin), stdout: sink(paths.stdout), stderr: sink(paths.stderr), close() {} }),
  });
  const server = new Server();
  server.register(Task, service.impl);
  const sock = path.join(dir, "shim.sock");
  await server.listen(sock);
  const client = await Client.dial(sock);

  let closed = false;
  return {
    task: client.service(Task),
    service,
    events,
    hypervisor,
    dir,
    get shutdowns() {
      return shutdowns;
    },
    bundle(id, b) {
      const bundle = path.join(dir, "bundles", id);
      const rootfs = path.join(bundle, "rootfs");
      fs.mkdirSync(rootfs, { recursive: true });
      const spec: OciSpec = {
        ociVersion: "1.1.0",
        process: { args: b.args, env: b.env ?? ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], cwd: "/", user: { uid: 0, gid: 0 } },
        root: { path: rootfs },
        ...(b.annotations ? { annotations: b.annotations } : {}),
      };
      fs.writeFileSync(path.join(bundle, "config.json"), JSON.stringify(spec));
      return bundle;
    },
    output(p) {
      return Buffer.concat(outputs.get(p) ?? []).toString("utf8");
    },
    input(p) {
      const s = inputs.get(p);
      if (!s) throw new Error(`no process was given stdin ${p}`);
      return s;
    },
    execSpec(args) {
      const p: OciProcess = { args, env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], cwd: "/", user: { uid: 0, gid: 0 } };
      return { typeUrl: PROCESS_TYPE_URL, value: Buffer.from(JSON.stringify(p)) };
    },
    async close() {
      if (closed) return;
      closed = true;
      client.close();
      await server.close(0);
      // The agents first: each kills and reaps what it ran whatever state the shim is in, so that a
      // test that failed half-way (or a shim that hangs) leaves no process behind. Then the shim's
      // crash path, which finds its agent gone.
      for (const vm of hypervisor.vms) await vm.stop();
      await service.cleanupAll();
      events.close();
      if (previousRunDir === undefined) delete process.env[RUN_DIR_ENV];
      else process.env[RUN_DIR_ENV] = previousRunDir;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
