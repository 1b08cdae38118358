// Running a shim binary the way containerd 1.6 does: `start` with its flags,
// cwd and environment, the address read from its combined output, a ttrpc
// connection per task, and `delete` afterwards.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { spawn } from "node:child_process";
import { Client } from "../ttrpc/client";
import type { CallOptions, ServiceClient } from "../ttrpc/service";
import { Task } from "../gen/containerd.task.v2";
import { DeleteResponse } from "../gen/containerd.task.v2";
import { mkfifo } from "./fifo";

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

/** One task's view of a shim: the bundle, the address, and its own ttrpc connection. */
export class ShimTask {
  readonly task: ServiceClient<typeof Task>;

  constructor(
    readonly id: string,
    readonly bundle: string,
    readonly address: string,
    readonly client: Client,
    readonly startResult: CommandResult,
    defaults: CallOptions = {},
  ) {
    this.task = client.service(Task, defaults);
  }

  close(): void {
    this.client.close();
  }
}

export class ShimRunner {
  constructor(readonly o: ShimBinaryOptions) {}

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, ...this.o.env, TTRPC_ADDRESS: this.o.ttrpcAddress, GOMAXPROCS: "2" };
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
    const r = await runCommand(this.o.binary, this.args(id, ["start"]), { cwd: bundle, env: this.env(), stdin: this.o.stdin, timeoutMs: this.o.timeoutMs });
    const address = r.combined.toString().trim();
    if (r.code !== 0) throw new ShimStartError(`failed to start shim: start failed: ${address}: exit status ${r.code}`, r);
    if (!address.startsWith("unix://") && !address.startsWith("/")) throw new ShimStartError(`shim start printed ${JSON.stringify(address.slice(0, 200))}, not an address`, r);
    const client = await Client.dial(address, { connectTimeoutMs: 10_000 });
    return new ShimTask(id, bundle, address, client, r, callDefaults);
  }

  /** `delete`, as containerd runs it after the task is deleted or the shim died. */
  async delete(id: string, bundle: string): Promise<{ result: CommandResult; response: ReturnType<typeof DeleteResponse.decode> | null }> {
    const r = await runCommand(this.o.binary, this.args(id, ["-bundle", bundle, "delete"]), { cwd: fs.existsSync(bundle) ? bundle : "/", env: this.env(), timeoutMs: this.o.timeoutMs });
    let response = null;
    if (r.code === 0) response = DeleteResponse.decode(r.stdout);
    return { result: r, response };
  }
}
