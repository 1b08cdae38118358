// A ttrpc conversation read off the wire, both directions, without touching
// it: requests and responses paired by stream id, payloads decoded by the
// services it knows, anything else kept as raw bytes. The shim's agent
// transport (agent-wire.ts) and `shimlab sniff`'s proxies record through it.
import { FrameReader, MessageType, type FrameEvent } from "../ttrpc/channel";
import { Request, Response } from "../gen/ttrpc";
import type { MethodDef, ServiceDef } from "../ttrpc/service";
import { codeName } from "../ttrpc/status";
import { summarize, type TraceRecorder } from "./recorder";

interface Open {
  id: string;
  quiet?: boolean;
  service: string;
  method: string;
  def?: MethodDef;
}

export interface WireTapOptions {
  rec: TraceRecorder;
  /** Lane of the side that sends requests, and of the side that answers. */
  from: string;
  to: string;
  /** Services whose payloads are decoded, by full name. */
  services: Record<string, ServiceDef>;
  conn: number;
  /**
   * Another line for a decoded request (e.g. an `event` for Events.Forward);
   * true when that line says it all, so the call and a successful reply are
   * not recorded again (a failed reply still is).
   */
  onCall?: (service: string, method: string, req: unknown) => boolean | void;
}

const RAW_BYTES = 256;

function decodeOr<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

export class WireTap {
  private readonly open = new Map<number, Open>();
  private readonly out = new FrameReader();
  private readonly inn = new FrameReader();

  constructor(private readonly o: WireTapOptions) {}

  /** Bytes the requesting side wrote. */
  requestBytes(chunk: Buffer): void {
    this.out.push(chunk, (e) => this.onRequestFrame(e));
  }

  /** Bytes the answering side wrote. */
  responseBytes(chunk: Buffer): void {
    this.inn.push(chunk, (e) => this.onResponseFrame(e));
  }

  /** The connection closed: calls still open never got an answer. */
  close(reason = "connection closed"): void {
    const { rec, from, to, conn } = this.o;
    for (const [stream, o] of this.open) rec.record("rpc.reply", { id: o.id, from: to, to: from, method: o.method, stream, conn, ok: false, code: "Unavailable", error: reason });
    this.open.clear();
    for (const [side, r] of [[from, this.out], [to, this.inn]] as const) {
      if (r.pending) rec.record("wire.raw", { from: side, to: side === from ? to : from, conn, reason: `${r.pending} bytes of a truncated frame at close` });
    }
  }

  private raw(from: string, to: string, e: FrameEvent, reason: string): void {
    const fields: Record<string, unknown> = { from, to, conn: this.o.conn, reason };
    if (e.kind !== "malformed") Object.assign(fields, { stream: e.header.streamId, type: e.header.type, flags: e.header.flags, length: e.header.length });
    if (e.kind === "frame") fields.hex = e.body.subarray(0, RAW_BYTES).toString("hex") + (e.body.length > RAW_BYTES ? "…" : "");
    this.o.rec.record("wire.raw", fields);
  }

  private onRequestFrame(e: FrameEvent): void {
    const { rec, from, to, conn, services } = this.o;
    if (e.kind !== "frame") return this.raw(from, to, e, e.kind === "oversize" ? "oversized frame" : e.reason);
    if (e.header.type !== MessageType.Request) return this.raw(from, to, e, `frame type ${e.header.type} from the requesting side`);
    const req = decodeOr(() => Request.decode(e.body));
    if (!req) return this.raw(from, to, e, "undecodable ttrpc Request");
    const def = services[req.service]?.methods[req.method] as MethodDef | undefined;
    const id = rec.nextId();
    const decoded = def ? decodeOr(() => def.requestType.decode(req.payload)) : undefined;
    const quiet = decoded !== undefined && this.o.onCall?.(req.service, req.method, decoded) === true;
    this.open.set(e.header.streamId, { id, service: req.service, method: req.method, def, quiet });
    if (quiet) return;
    const fields: Record<string, unknown> = { id, from, to, service: req.service, method: req.method, stream: e.header.streamId, conn, req: summarize(def?.requestType, decoded) };
    if (!def || decoded === undefined) fields.payloadHex = Buffer.from(req.payload).subarray(0, RAW_BYTES).toString("hex");
    if (req.timeoutNano) fields.timeoutMs = Number(req.timeoutNano) / 1e6;
    rec.record("rpc.call", fields);
  }

  private onResponseFrame(e: FrameEvent): void {
    const { rec, from, to, conn } = this.o;
    if (e.kind !== "frame") return this.raw(to, from, e, e.kind === "oversize" ? "oversized frame" : e.reason);
    if (e.header.type !== MessageType.Response) return this.raw(to, from, e, `frame type ${e.header.type} from the answering side`);
    const o = this.open.get(e.header.streamId);
    const res = decodeOr(() => Response.decode(e.body));
    if (!o || !res) return this.raw(to, from, e, o ? "undecodable ttrpc Response" : `response on stream ${e.header.streamId}, which has no open call`);
    this.open.delete(e.header.streamId);
    const base = { id: o.id, from: to, to: from, method: o.method, stream: e.header.streamId, conn };
    if (res.status && res.status.code !== 0) {
      rec.record("rpc.reply", { ...base, ok: false, code: codeName[res.status.code] ?? res.status.code, error: res.status.message });
      return;
    }
    if (o.quiet) return;
    const decoded = o.def ? decodeOr(() => o.def!.responseType.decode(res.payload)) : undefined;
    const fields: Record<string, unknown> = { ...base, ok: true, res: summarize(o.def?.responseType, decoded) };
    if (!o.def || decoded === undefined) fields.payloadHex = Buffer.from(res.payload).subarray(0, RAW_BYTES).toString("hex");
    rec.record("rpc.reply", fields);
  }
}
