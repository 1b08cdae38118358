// shim→agent calls as they cross the agent's transport: a tap on the frames
// the shim's agent client writes and reads, so the kata API client and the
// pod code stay exactly as they are. Works for any transport (hybrid vsock,
// virtio-serial, vsock), i.e. for a VM's agent too.
import type { Duplex } from "node:stream";
import type { Transport } from "../agent/transport";
import { FrameReader, MessageType, type FrameEvent } from "../ttrpc/channel";
import { Request, Response } from "../gen/ttrpc";
import { AgentService, Health } from "../gen/grpc";
import type { MethodDef, ServiceDef } from "../ttrpc/service";
import { codeName } from "../ttrpc/status";
import { summarize, type TraceRecorder } from "./recorder";

const SERVICES: Record<string, ServiceDef> = { [AgentService.name]: AgentService, [Health.name]: Health };

interface Open {
  id: string;
  method: string;
  def?: MethodDef;
}

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
    const open = new Map<number, Open>();
    const out = new FrameReader();
    const inn = new FrameReader();
    const { rec, from, to } = this;
    rec.record("agent.connect", { url: this.inner.url, conn });
    const onOut = (e: FrameEvent) => {
      if (e.kind !== "frame" || e.header.type !== MessageType.Request) return;
      try {
        const req = Request.decode(e.body);
        const def = SERVICES[req.service]?.methods[req.method];
        const id = rec.nextId();
        open.set(e.header.streamId, { id, method: req.method, def });
        let decoded: unknown;
        try {
          decoded = def ? def.requestType.decode(req.payload) : undefined;
        } catch {
          decoded = undefined;
        }
        rec.record("rpc.call", { id, from, to, service: req.service, method: req.method, stream: e.header.streamId, conn, req: summarize(def?.requestType, decoded) });
      } catch {
        /* not ours to judge: the agent answers malformed requests itself */
      }
    };
    const onIn = (e: FrameEvent) => {
      if (e.kind !== "frame" || e.header.type !== MessageType.Response) return;
      const o = open.get(e.header.streamId);
      if (!o) return;
      open.delete(e.header.streamId);
      try {
        const res = Response.decode(e.body);
        if (res.status && res.status.code !== 0) {
          rec.record("rpc.reply", { id: o.id, from: to, to: from, method: o.method, stream: e.header.streamId, conn, ok: false, code: codeName[res.status.code] ?? res.status.code, error: res.status.message });
        } else {
          let decoded: unknown;
          try {
            decoded = o.def ? o.def.responseType.decode(res.payload) : undefined;
          } catch {
            decoded = undefined;
          }
          rec.record("rpc.reply", { id: o.id, from: to, to: from, method: o.method, stream: e.header.streamId, conn, ok: true, res: summarize(o.def?.responseType, decoded) });
        }
      } catch {
        /* the client reports undecodable responses itself */
      }
    };
    const write = s.write;
    s.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]): boolean {
      if (Buffer.isBuffer(chunk)) out.push(chunk, onOut);
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as Duplex["write"];
    // The client attaches its own 'data' listener right after connect resolves;
    // a second listener sees the same chunks and does not change the flow.
    s.on("data", (chunk: Buffer) => inn.push(chunk, onIn));
    s.once("close", () => {
      for (const [stream, o] of open) rec.record("rpc.reply", { id: o.id, from: to, to: from, method: o.method, stream, conn, ok: false, code: "Unavailable", error: "connection closed" });
      open.clear();
      rec.record("agent.disconnect", { url: this.inner.url, conn });
    });
  }
}
