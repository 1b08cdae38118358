// A CRI v1 client, as the kubelet (or crictl) talks to containerd's CRI
// plugin: gRPC over a unix socket, runtime.v1.RuntimeService and ImageService,
// messages encoded by the codecs generated from proto/k8s/cri.
import * as grpc from "@grpc/grpc-js";
import { ImageService, RuntimeService } from "../../gen/runtime.v1";
import type { MethodDef, ServiceClient, ServiceDef, CallOptions } from "../../ttrpc/service";
import { RpcError } from "../../ttrpc/status";

export interface CriClientOptions {
  /** Deadline for every call that sets none of its own (kubelet's default runtime-request-timeout is 2 min). */
  defaultTimeoutMs?: number;
}

/** The unix socket path, or a gRPC target (unix:///…) as given. */
export function criTarget(address: string): string {
  return /^[a-z]+:/.test(address) ? address : `unix://${address}`;
}

export class CriClient {
  readonly runtime: ServiceClient<typeof RuntimeService>;
  readonly image: ServiceClient<typeof ImageService>;
  private readonly client: grpc.Client;

  constructor(
    readonly address: string,
    private readonly o: CriClientOptions = {},
  ) {
    this.client = new grpc.Client(criTarget(address), grpc.credentials.createInsecure(), {
      // ExecSync output can be large; containerd allows 16 MiB each way.
      "grpc.max_receive_message_length": 16 * 1024 * 1024,
      "grpc.max_send_message_length": 16 * 1024 * 1024,
    });
    this.runtime = this.stub(RuntimeService);
    this.image = this.stub(ImageService);
  }

  private stub<S extends ServiceDef>(svc: S): ServiceClient<S> {
    const out: Record<string, unknown> = {};
    for (const [key, m] of Object.entries(svc.methods)) out[key] = (req: unknown, opts?: CallOptions) => this.unary(svc.name, m, req, opts);
    return out as ServiceClient<S>;
  }

  private unary(service: string, m: MethodDef, req: unknown, opts: CallOptions = {}): Promise<unknown> {
    const timeoutMs = opts.timeoutMs ?? this.o.defaultTimeoutMs ?? 120_000;
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.metadata ?? {})) for (const x of Array.isArray(v) ? v : [v]) md.add(k, x);
    return new Promise((resolve, reject) => {
      const call = this.client.makeUnaryRequest(
        `/${service}/${m.name}`,
        (x: unknown) => m.requestType.encode(x),
        (b: Buffer) => m.responseType.decode(b),
        req,
        md,
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(toRpcError(service, m.name, err)) : resolve(res)),
      );
      opts.signal?.addEventListener("abort", () => call.cancel(), { once: true });
    });
  }

  /** Resolves when the channel is connected (containerd's CRI socket answers). */
  waitForReady(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => this.client.waitForReady(Date.now() + timeoutMs, (e) => (e ? reject(e) : resolve())));
  }

  /**
   * Resolves when Status reports every condition true (RuntimeReady, NetworkReady), as the kubelet
   * waits before it runs a pod. CRI-O reports its network ready only after its CNI manager's first
   * poll (500 ms after start, then a CNI GC), so a client that starts at once can see it not ready.
   */
  async untilRuntimeReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "no answer";
    for (;;) {
      try {
        const s = await this.runtime.Status({}, { timeoutMs: 10_000 });
        const down = (s.status?.conditions ?? []).filter((c) => !c.status);
        if (s.status && !down.length) return;
        last = down.map((c) => `${c.type}: ${c.reason} ${c.message}`.trim()).join("; ") || "no conditions";
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`the CRI runtime at ${this.address} is not ready after ${timeoutMs} ms: ${last}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  close(): void {
    this.client.close();
  }
}

/** gRPC status → the same RpcError the ttrpc side uses, with the method named. */
function toRpcError(service: string, method: string, e: grpc.ServiceError): RpcError {
  const short = service.split(".").pop();
  return new RpcError(e.code, `${short}/${method}: ${e.details || e.message}`);
}
