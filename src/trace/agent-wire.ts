// shim→agent calls as they cross the agent's transport: a tap on the frames
// the shim's agent client writes and reads, so the kata API client and the
// pod code stay exactly as they are. Works for any transport (hybrid vsock,
// virtio-serial, vsock), i.e. for a VM's agent too.
import type { Duplex } from "node:stream";
import type { Transport } from "../agent/transport";
import { AgentService, Health } from "../gen/grpc";
import type { ServiceDef } from "../ttrpc/service";
import type { TraceRecorder } from "./recorder";
import { WireTap } from "./wire-tap";

const SERVICES: Record<string, ServiceDef> = { [AgentService.name]: AgentService, [Health.name]: Health };

export class TracedTransport implements Transport {
  private conn = 0;

  constructor(
    private readonly inner: Transport,
    private readonly rec: TraceRecorder,
    private readonly from = "shim",
    private readonly to = "agent",
  ) {}

  get url(): string {
    return this.inner.url;
  }

  async connect(signal: AbortSignal): Promise<Duplex> {
    const s = await this.inner.connect(signal);
    this.tap(s, ++this.conn);
    return s;
  }

  private tap(s: Duplex, conn: number): void {
    const { rec, from, to } = this;
    rec.record("agent.connect", { url: this.inner.url, conn });
    const tap = new WireTap({ rec, from, to, services: SERVICES, conn });
    const write = s.write;
    s.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]): boolean {
      if (Buffer.isBuffer(chunk)) tap.requestBytes(chunk);
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as Duplex["write"];
    // The client attaches its own 'data' listener right after connect resolves;
    // a second listener sees the same chunks and does not change the flow.
    s.on("data", (chunk: Buffer) => tap.responseBytes(chunk));
    s.once("close", () => {
      tap.close();
      rec.record("agent.disconnect", { url: this.inner.url, conn });
    });
  }
}
