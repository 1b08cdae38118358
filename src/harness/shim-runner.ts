// Running a shim binary the way containerd 1.6 does: `start` with its flags,
// cwd and environment, the address read from its combined output, a ttrpc
// connection per task, and `delete` afterwards. With `containerd2`, the way a
// later containerd does (its `series`): 1.7's and 2.1's environment and their
// reading of a JSON bootstrap result (checked against the real ones by
// test/integration/emulator-fidelity.test.ts), or 2.3's BootstrapParams on
// stdin and its protobuf result; task v3 and gRPC when the shim says so.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { spawn } from "node:child_process";
import { Client } from "../ttrpc/client";
import type { CallOptions, ServiceClient } from "../ttrpc/service";
import { Task } from "../gen/containerd.task.v2";
import { Task as TaskV3 } from "../gen/containerd.task.v3";
import { DeleteResponse } from "../gen/containerd.task.v2";
import { BootstrapParams } from "../gen/containerd.runtime.bootstrap.v1";
import { Any } from "../gen/google.protobuf";
import { parseStartResponse, type ParsedResult } from "../shim/bootstrap";
import { GrpcShimClient } from "./grpc-client";
import { mkfifo } from "./fifo";

/** How a containerd after 1.6 plays the binary contract. */
export interface Containerd2Options {
  /**
   * Which containerd: "1.7" (JSON results up to version 2, no bootstrap.json),
   * "2.1" (JSON up to version 3, bootstrap.json; it drops a gRPC shim at once,
   * difference `grpc-shim-dropped`), or "2.3" (the default: BootstrapParams on
   * stdin and a protobuf result first).
   */
  series?: "1.7" | "2.1" | "2.3";
  /** 2.3+ writes BootstrapParams on stdin (protobuf; JSON as the proto documents); 1.7-2.2 write none. */
  params?: "binary" | "json" | "none";
  /** Asks shimlab for this protocol through containerd's environment (SHIMLAB_SHIM_PROTOCOL). */
  protocol?: "ttrpc" | "grpc";
  /** BootstrapParams.socket_dir. */
  socketDir?: string;
  /** The version containerd says it is. */
  version?: string;
}

/** containerd's io.containerd.internal.v1.opt path (its default). */
export const OPT_DIR = "/opt/containerd";

export interface ShimBinaryOptions {
  /** The shim executable. */
  binary: string;
  namespace: string;
  /** containerd's gRPC address (only hashed into the socket name here). */
  address: string;
  /** Our events endpoint: given to the shim as TTRPC_ADDRESS. */
  ttrpcAddress: string;
  publishBinary?: string;
  debug?: boolean;
  env?: NodeJS.ProcessEnv;
  /** A google.protobuf.Any on stdin, as containerd sends runtime options. */
  stdin?: Buffer;
  timeoutMs?: number;
  /** Play containerd 2.x instead of 1.6. */
  containerd2?: Containerd2Options;
}

export interface CommandResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
  /** stdout and stderr interleaved, as containerd reads `start`. */
  combined: Buffer;
  ms: number;
}

export function runCommand(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; stdin?: Buffer; timeoutMs?: number } = {}): Promise<CommandResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const both: Buffer[] = [];
    child.stdout.on("data", (d) => (out.push(d), both.push(d)));
    child.stderr.on("data", (d) => (err.push(d), both.push(d)));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${path.basename(cmd)} ${args.at(-1)} did not finish within ${o.timeoutMs} ms (a daemon holding its stdout would do this)`));
    }, o.timeoutMs ?? 30_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // "close": containerd waits for EOF on the pipes, not just the exit.
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err), combined: Buffer.concat(both), ms: performance.now() - t0 });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(o.stdin ?? Buffer.alloc(0));
  });
}

export class ShimStartError extends Error {
  constructor(
    message: string,
    readonly result: CommandResult,
  ) {
    super(message);
  }
}

/** One task's view of a shim: the bundle, the address, and its own connection (ttrpc, or gRPC for 2.x). */
export class ShimTask {
  /** Task v2's stub; on a v3 shim the same calls go to containerd.task.v3.Task (same messages). */
  readonly task: ServiceClient<typeof Task>;
  /** The Task service definition those calls go to. */
  readonly taskDef: typeof Task;

  constructor(
    readonly id: string,
    readonly bundle: string,
    readonly address: string,
    readonly client: Client | GrpcShimClient,
    readonly startResult: CommandResult,
    defaults: CallOptions = {},
    /** What `start` answered, as containerd 2.3 reads it. */
    readonly bootstrap: ParsedResult = { version: 2, address, protocol: "ttrpc" },
  ) {
    this.taskDef = (bootstrap.version >= 3 ? TaskV3 : Task) as typeof Task;
    this.task = (client as Client).service(this.taskDef, defaults);
  }

  close(): void {
    this.client.close();
  }
}

export class ShimRunner {
  constructor(readonly o: ShimBinaryOptions) {}

  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.o.env, TTRPC_ADDRESS: this.o.ttrpcAddress, GOMAXPROCS: "2" };
    // containerd's `opt` plugin puts its image-installed binaries and libraries
    // first in its own environment at start, which every shim inherits.
    env.PATH = `${OPT_DIR}/bin:${env.PATH ?? ""}`;
    env.LD_LIBRARY_PATH = `${OPT_DIR}/lib:${env.LD_LIBRARY_PATH ?? ""}`;
    const c2 = this.o.containerd2;
    if (c2) {
      // 1.7 and 2.x add these (2.x still says MAX_SHIM_VERSION=2).
      Object.assign(env, { MAX_SHIM_VERSION: "2", GRPC_ADDRESS: this.o.address, NAMESPACE: this.o.namespace });
      if (c2.protocol) env.SHIMLAB_SHIM_PROTOCOL = c2.protocol;
    }
    return env;
  }

  /** containerd 2.3's stdin for `start`: BootstrapParams, runtime options as an extension. */
  bootstrapParams(id: string): Buffer | undefined {
    const c2 = this.o.containerd2;
    if (!c2) return this.o.stdin;
    const mode = (c2.series ?? "2.3") === "2.3" ? (c2.params ?? "binary") : "none";
    if (mode === "none") return this.o.stdin;
    const p = {
      instanceId: id,
      namespace: this.o.namespace,
      logLevel: this.o.debug ? -4 : 0,
      containerdVersion: c2.version ?? "v2.3.0",
      containerdTtrpcAddress: this.o.ttrpcAddress,
      containerdGrpcAddress: this.o.address,
      containerdBinary: this.o.publishBinary ?? "/usr/bin/containerd",
      socketDir: c2.socketDir,
    };
    if (mode === "json") return Buffer.from(JSON.stringify(p));
    const options = this.o.stdin ? Any.decode(this.o.stdin) : undefined;
    return BootstrapParams.encode({ ...p, extensions: options ? [{ value: options }] : [] });
  }

  private args(id: string, extra: string[]): string[] {
    const a = ["-namespace", this.o.namespace, "-address", this.o.address, "-publish-binary", this.o.publishBinary ?? "/usr/bin/containerd", "-id", id];
    if (this.o.debug) a.push("-debug");
    return [...a, ...extra];
  }

  /** containerd's `log` fifo, opened O_RDWR|O_NONBLOCK before `start`, as containerd does. */
  private logFifo(bundle: string): void {
    const p = path.join(bundle, "log");
    if (!fs.existsSync(p)) mkfifo(p, 0o700);
    const fd = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const s = new net.Socket({ fd, readable: true, writable: false });
    const out = fs.createWriteStream(path.join(bundle, "..", `.${path.basename(bundle)}.shim.log`), { flags: "a" });
    s.pipe(out);
    s.on("error", () => {});
    s.unref();
  }

  /** `start` in the bundle, then a connection to the printed address. */
  async start(id: string, bundle: string, callDefaults: CallOptions = {}): Promise<ShimTask> {
    this.logFifo(bundle);
    const r = await runCommand(this.o.binary, this.args(id, ["start"]), { cwd: bundle, env: this.env(), stdin: this.bootstrapParams(id), timeoutMs: this.o.timeoutMs });
    if (r.code !== 0) throw new ShimStartError(`failed to start shim: start failed: ${r.combined.toString().trim()}: exit status ${r.code}`, r);
    // Every version records the binary it ran (for `delete` after a restart) before reading its answer.
    fs.writeFileSync(path.join(bundle, "shim-binary-path"), this.o.binary, { mode: 0o600 });
    if (!this.o.containerd2) {
      const address = r.combined.toString().trim();
      if (!address.startsWith("unix://") && !address.startsWith("/")) throw new ShimStartError(`shim start printed ${JSON.stringify(address.slice(0, 200))}, not an address`, r);
      const client = await Client.dial(address, { connectTimeoutMs: 10_000 });
      return new ShimTask(id, bundle, address, client, r, callDefaults);
    }
    const series = this.o.containerd2.series ?? "2.3";
    let boot: ParsedResult;
    try {
      boot = parseStartResponse(r.combined, series);
    } catch (e) {
      throw new ShimStartError(`failed to start shim: start failed: ${(e as Error).message}`, r);
    }
    if (boot.protocol === "grpc" && boot.version < 3) throw new ShimStartError(`shim asks for gRPC with task API version ${boot.version}; gRPC needs version 3`, r);
    if (boot.protocol === "grpc" && series === "2.1") {
      // Real 2.1 connects, sees its new gRPC client Idle, takes the shim for dead
      // and removes the bundle: the next call fails. Say so rather than pretend.
      throw new ShimStartError(`containerd 2.1 drops a gRPC shim as soon as it connects (difference grpc-shim-dropped): use ttrpc, or series 2.3`, r);
    }
    const client =
      boot.protocol === "grpc"
        ? await GrpcShimClient.dial(boot.address, { connectTimeoutMs: 10_000 })
        : boot.protocol === "ttrpc"
          ? await Client.dial(boot.address, { connectTimeoutMs: 10_000 })
          : null;
    if (!client) throw new ShimStartError(`unexpected protocol: ${JSON.stringify(boot.protocol)}`, r);
    // 2.x keeps the start result for reconnecting after a restart, once it has connected; 1.7 does not.
    if (series !== "1.7") fs.writeFileSync(path.join(bundle, "bootstrap.json"), JSON.stringify(boot));
    return new ShimTask(id, bundle, boot.address, client, r, callDefaults, boot);
  }

  /** `delete`, as containerd runs it after the task is deleted or the shim died. */
  async delete(id: string, bundle: string): Promise<{ result: CommandResult; response: ReturnType<typeof DeleteResponse.decode> | null }> {
    const r = await runCommand(this.o.binary, this.args(id, ["-bundle", bundle, "delete"]), { cwd: fs.existsSync(bundle) ? bundle : "/", env: this.env(), timeoutMs: this.o.timeoutMs });
    let response = null;
    if (r.code === 0) response = DeleteResponse.decode(r.stdout);
    return { result: r, response };
  }
}
