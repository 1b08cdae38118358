// A gRPC client for a shim's Task API, as containerd 2.x dials a shim whose
// bootstrap result says `"protocol":"grpc"`: insecure, over the unix socket,
// with the same stub shape as the ttrpc client so tests run on either.
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { CallOptions, ServiceClient, ServiceDef } from "../ttrpc/service";
import { Code, RpcError } from "../ttrpc/status";
import { Writer } from "../proto/wire";

export class GrpcShimClient {
  private readonly client: grpc.Client;
  private closedFlag = false;

  private constructor(readonly address: string) {
    this.client = new grpc.Client(`unix://${address}`, grpc.credentials.createInsecure(), {
      // One connection, as containerd holds one per task.
      "grpc.use_local_subchannel_pool": 1,
    });
  }

  /** Connects (containerd dials first, then builds the gRPC client) within the timeout. */
  static async dial(address: string, o: { connectTimeoutMs?: number } = {}): Promise<GrpcShimClient> {
    // containerd 2.x first dials the address as a plain unix socket path
    // (net.DialTimeout("unix", address)), so a `unix://` scheme fails there.
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(address);
      const t = setTimeout(() => (s.destroy(), reject(new RpcError(Code.Unavailable, `dial unix ${address}: i/o timeout`))), o.connectTimeoutMs ?? 10_000);
      s.once("connect", () => (clearTimeout(t), s.destroy(), resolve()));
      s.once("error", (e: NodeJS.ErrnoException) => (clearTimeout(t), reject(new RpcError(Code.Unavailable, `dial unix ${address}: connect: ${e.code === "ENOENT" ? "no such file or directory" : e.message}`))));
    });
    const c = new GrpcShimClient(address);
    await new Promise<void>((resolve, reject) =>
      c.client.waitForReady(Date.now() + (o.connectTimeoutMs ?? 10_000), (err) => (err ? reject(new RpcError(Code.Unavailable, `grpc dial ${address}: ${err.message}`)) : resolve())),
    );
    return c;
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  service<S extends ServiceDef>(def: S, defaults: CallOptions = {}): ServiceClient<S> {
    const out: Record<string, (req: unknown, opts?: CallOptions) => Promise<unknown>> = {};
    for (const [name, m] of Object.entries(def.methods)) {
      out[name] = (req, opts = {}) => {
        const o = { ...defaults, ...opts };
        const md = new grpc.Metadata();
        for (const [k, v] of Object.entries(o.metadata ?? {})) for (const x of Array.isArray(v) ? v : [v]) md.add(k, x);
        const callOpts: grpc.CallOptions = {};
        if (o.timeoutMs !== undefined) callOpts.deadline = Date.now() + o.timeoutMs;
        return new Promise((resolve, reject) => {
          const call = this.client.makeUnaryRequest(
            `/${def.name}/${name}`,
            (v: unknown) => m.requestType.encode(v as never),
            (b: Buffer) => m.responseType.decode(b),
            req,
            md,
            callOpts,
            (err, value) => (err ? reject(new RpcError(err.code, err.details)) : resolve(value)),
          );
          o.signal?.addEventListener("abort", () => call.cancel(), { once: true });
        });
      };
    }
    return out as ServiceClient<S>;
  }

  /** A call whose request payload the caller writes itself (as the ttrpc Client's callRaw). */
  callRaw(service: string, method: string, writePayload: (w: Writer) => void, opts: CallOptions = {}): Promise<Buffer> {
    const w = new Writer(64);
    writePayload(w);
    const payload = w.finish();
    const callOpts: grpc.CallOptions = {};
    if (opts.timeoutMs !== undefined) callOpts.deadline = Date.now() + opts.timeoutMs;
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/${service}/${method}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        payload,
        new grpc.Metadata(),
        callOpts,
        (err, value) => (err ? reject(new RpcError(err.code, err.details)) : resolve(value!)),
      );
    });
  }

  close(): void {
    this.closedFlag = true;
    this.client.close();
  }
}
