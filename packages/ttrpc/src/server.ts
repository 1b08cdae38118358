// A ttrpc server: unary calls, answered concurrently and matched by stream id.
import net from "node:net";
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { FrameReader, HEADER_LENGTH, MESSAGE_LENGTH_MAX, MessageType, writeHeader, type FrameEvent } from "./channel";
import { Code, RpcError, asRpcError } from "./status";
import { afterDeadline, type DeadlineTimer } from "./deadline";
import { Writer } from "./wire";
import { Request, Response } from "./gen/ttrpc";
import { Status } from "./gen/google.rpc";
import type { CallContext, MessageCodec } from "./message";
import type { MethodDef, ServiceDef, ServiceImpl } from "./service";

type AnyHandler = (req: unknown, ctx: CallContext) => unknown;

interface Registered {
  def: MethodDef;
  handler: AnyHandler;
}

/** What an interceptor sees of a call. */
export interface ServerCall {
  readonly service: string;
  readonly method: string;
  readonly request: unknown;
  readonly ctx: CallContext;
  readonly requestType: MessageCodec<unknown, unknown>;
  readonly responseType: MessageCodec<unknown, unknown>;
}

/** Wraps every call: may delay, fail, observe or replace it (failpoints and traces plug in here). */
export type Interceptor = (call: ServerCall, next: () => Promise<unknown>) => Promise<unknown>;

export interface ServerOptions {
  /** Bytes queued to a peer that stopped reading before the connection is dropped. */
  maxPendingWrite?: number;
}

/**
 * Events: "connection" (conn), "disconnect" (conn), "protocolError" (conn, reason),
 * "handlerError" (call, error) for handlers that threw something other than an RpcError.
 */
export class Server extends EventEmitter {
  private readonly services = new Map<string, Map<string, Registered>>();
  private readonly interceptors: Interceptor[] = [];
  private readonly conns = new Set<ServerConnection>();
  private readonly netServers: net.Server[] = [];
  readonly maxPendingWrite: number;

  constructor(opts: ServerOptions = {}) {
    super();
    this.maxPendingWrite = opts.maxPendingWrite ?? 64 << 20;
  }

  register<S extends ServiceDef>(def: S, impl: ServiceImpl<S>): this {
    let methods = this.services.get(def.name);
    if (!methods) {
      methods = new Map();
      this.services.set(def.name, methods);
    }
    for (const [name, m] of Object.entries(def.methods)) {
      const fn = (impl as Record<string, AnyHandler>)[name];
      if (typeof fn !== "function") throw new Error(`service ${def.name}: no handler for ${name}`);
      methods.set(name, { def: m, handler: fn.bind(impl) });
    }
    return this;
  }

  use(interceptor: Interceptor): this {
    this.interceptors.push(interceptor);
    return this;
  }

  /** Serves connections accepted by `listener` (already listening, or to be). */
  serve(listener: net.Server): net.Server {
    this.netServers.push(listener);
    listener.on("connection", (sock) => this.handle(sock));
    return listener;
  }

  /** Listens on a unix socket at path and serves it (close() stops it). */
  async listen(path: string): Promise<net.Server> {
    const l = this.serve(net.createServer());
    await new Promise<void>((resolve, reject) => {
      l.once("error", reject);
      l.listen(path, () => {
        l.off("error", reject);
        resolve();
      });
    });
    return l;
  }

  /** Serves one established byte stream. */
  handle(stream: Duplex): ServerConnection {
    const conn = new ServerConnection(this, stream);
    this.conns.add(conn);
    stream.once("close", () => {
      this.conns.delete(conn);
      conn.abortAll();
      this.emit("disconnect", conn);
    });
    this.emit("connection", conn);
    return conn;
  }

  get connections(): ReadonlySet<ServerConnection> {
    return this.conns;
  }

  lookup(service: string, method: string): Registered | RpcError {
    const s = this.services.get(service);
    if (!s) return new RpcError(Code.Unimplemented, `service ${service}`);
    const m = s.get(method);
    if (!m) return new RpcError(Code.Unimplemented, `method ${method}`);
    return m;
  }

  dispatch(call: ServerCall, handler: AnyHandler): Promise<unknown> {
    let i = -1;
    const run = (idx: number): Promise<unknown> => {
      if (idx <= i) return Promise.reject(new Error("interceptor called next() twice"));
      i = idx;
      const ic = this.interceptors[idx];
      if (!ic) return Promise.resolve().then(() => handler(call.request, call.ctx));
      return ic(call, () => run(idx + 1));
    };
    return run(0);
  }

  /**
   * Waits, up to ms, until every peer has closed its connection. Go ttrpc's
   * client fails a call whose response and the connection's EOF arrive
   * together (dispatch selects at random between the two): a server about to
   * close after an answer the peer must see lets the peer hang up first.
   */
  async peersGone(ms: number): Promise<void> {
    if (!this.conns.size) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off("disconnect", check);
        resolve();
      };
      const check = () => {
        if (!this.conns.size) done();
      };
      const timer = setTimeout(done, ms);
      this.on("disconnect", check);
    });
  }

  /**
   * Stops accepting and closes every connection. A listener's close waits for
   * its connections to end, and a client may keep its connection open (one per
   * task of a pod): so connections are ended here — a last response written
   * still goes out — and cut after graceMs if the peer does not hang up.
   */
  async close(graceMs = 300): Promise<void> {
    const listenersClosed = Promise.all(
      this.netServers.map(
        (l) =>
          new Promise<void>((res) => {
            if (!l.listening) return res();
            l.close(() => res());
          }),
      ),
    );
    for (const c of this.conns) c.stream.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([listenersClosed, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const c of this.conns) c.destroy();
    await listenersClosed;
  }
}

/**
 * A call's cancellation, with its AbortController made only when a handler
 * asks for ctx.signal. Node 20's AbortSignal is weakly tracked, and one per
 * call made every young-generation GC slower as calls went by (scavenges grew
 * from 0.2 to 5 ms over 20 000 calls); most handlers never look at it.
 */
class Cancel {
  private ac: AbortController | null = null;
  private reason: unknown = undefined;
  private aborted = false;

  get signal(): AbortSignal {
    if (!this.ac) {
      if (this.aborted) return AbortSignal.abort(this.reason);
      this.ac = new AbortController();
    }
    return this.ac.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.ac?.abort(reason);
  }
}

/**
 * The handler's CallContext. A class, so that `signal` is one getter on the
 * prototype: an object literal with a getter per call bred hidden classes and
 * slowed every scavenge as much as the AbortControllers did.
 */
class ServerCallContext implements CallContext {
  constructor(
    readonly metadata: ReadonlyMap<string, string[]>,
    private readonly cancel: Cancel,
    readonly deadline: number | undefined,
    readonly method: string,
    readonly streamId: number,
  ) {}

  get signal(): AbortSignal {
    return this.cancel.signal;
  }
}

export class ServerConnection {
  private readonly reader = new FrameReader();
  private readonly active = new Map<number, Cancel>();
  private closed = false;

  constructor(
    private readonly server: Server,
    readonly stream: Duplex,
  ) {
    stream.on("data", (chunk: Buffer) => this.reader.push(chunk, (e) => this.onFrame(e)));
    stream.resume(); // a handshake may have paused it
    stream.on("error", () => {
      /* the close event follows; an errored peer is just a gone peer */
    });
    stream.on("close", () => {
      this.closed = true;
    });
  }

  get inFlight(): number {
    return this.active.size;
  }

  destroy(): void {
    this.closed = true;
    this.stream.destroy();
  }

  abortAll(): void {
    for (const c of this.active.values()) c.abort(new RpcError(Code.Canceled, "ttrpc: connection closed"));
    this.active.clear();
  }

  private onFrame(e: FrameEvent): void {
    if (e.kind === "malformed") {
      this.server.emit("protocolError", this, e.reason);
      this.destroy();
      return;
    }
    if (e.kind === "oversize") {
      this.sendStatus(
        e.header.streamId,
        new RpcError(Code.ResourceExhausted, `message length ${e.header.length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`),
      );
      return;
    }
    const { header, body } = e;
    // Unknown frame types are skipped for forward compatibility, as ttrpc does.
    if (header.type !== MessageType.Request) return;
    let req: Request;
    try {
      req = Request.decode(body);
    } catch (err) {
      this.sendStatus(header.streamId, new RpcError(Code.InvalidArgument, `unmarshal request error: ${(err as Error).message}`));
      return;
    }
    if (header.streamId % 2 !== 1) {
      this.sendStatus(header.streamId, new RpcError(Code.InvalidArgument, "StreamID must be odd for client initiated streams"));
      return;
    }
    if (this.active.has(header.streamId)) {
      this.sendStatus(header.streamId, new RpcError(Code.InvalidArgument, `stream ${header.streamId} already in use`));
      return;
    }
    this.call(header.streamId, req);
  }

  private call(streamId: number, req: Request): void {
    const found = this.server.lookup(req.service, req.method);
    if (found instanceof RpcError) {
      this.sendStatus(streamId, found);
      return;
    }
    let request: unknown;
    try {
      request = found.def.requestType.decode(req.payload);
    } catch (err) {
      // Go's ttrpc (1.1 and 1.2) decodes the payload inside the method and
      // answers Internal; InvalidArgument is only for an envelope it cannot read.
      this.sendStatus(streamId, new RpcError(Code.Internal, `ttrpc: error unmarshalling payload: ${(err as Error).message}`));
      return;
    }
    const cancel = new Cancel();
    this.active.set(streamId, cancel);
    const metadata = new Map<string, string[]>();
    for (const kv of req.metadata) {
      const k = kv.key.toLowerCase();
      const list = metadata.get(k);
      if (list) list.push(kv.value);
      else metadata.set(k, [kv.value]);
    }
    let deadline: number | undefined;
    let timer: DeadlineTimer | undefined;
    let answered = false;
    const finish = (res: { ok: true; value: unknown } | { ok: false; error: RpcError }) => {
      if (answered) return;
      answered = true;
      timer?.clear();
      this.active.delete(streamId);
      if (res.ok) this.sendResponse(streamId, found.def.responseType, res.value);
      else this.sendStatus(streamId, res.error);
    };
    if (req.timeoutNano > 0) {
      const ms = req.timeoutNano / 1e6;
      deadline = Date.now() + ms;
      timer = afterDeadline(Math.ceil(ms), () => {
        const err = new RpcError(Code.DeadlineExceeded, "context deadline exceeded");
        cancel.abort(err);
        finish({ ok: false, error: err });
      });
    }
    const ctx: CallContext = new ServerCallContext(metadata, cancel, deadline, `${req.service}/${req.method}`, streamId);
    const call: ServerCall = {
      service: req.service,
      method: req.method,
      request,
      ctx,
      requestType: found.def.requestType,
      responseType: found.def.responseType,
    };
    this.server.dispatch(call, found.handler).then(
      (value) => finish({ ok: true, value }),
      (err) => {
        if (!(err instanceof RpcError)) this.server.emit("handlerError", call, err);
        finish({ ok: false, error: asRpcError(err) });
      },
    );
  }

  private sendResponse(streamId: number, type: MessageCodec<unknown, unknown>, value: unknown): void {
    if (this.closed) return;
    const w = new Writer(256);
    w.reserve(HEADER_LENGTH);
    // Response.payload (field 2), written in place: one buffer for header, envelope and message.
    const tagAt = w.pos;
    w.uint32((2 << 3) | 2);
    const at = w.fork();
    try {
      type.write((value ?? {}) as never, w);
    } catch (err) {
      this.sendStatus(streamId, new RpcError(Code.Internal, `marshal response error: ${(err as Error).message}`));
      return;
    }
    if (w.pos === at + 1) w.pos = tagAt; // empty payload: Go sends a zero-length Response
    else w.ldelim(at);
    const length = w.pos - HEADER_LENGTH;
    if (length > MESSAGE_LENGTH_MAX) {
      this.sendStatus(
        streamId,
        new RpcError(Code.ResourceExhausted, `message length ${length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`),
      );
      return;
    }
    const frame = w.finish();
    writeHeader(frame, 0, { length, streamId, type: MessageType.Response, flags: 0 });
    this.write(frame);
  }

  sendStatus(streamId: number, err: RpcError): void {
    if (this.closed) return;
    const body = Response.encode({
      status: Status.create({ code: err.code, message: err.message, details: err.details as never }),
    });
    const frame = Buffer.allocUnsafe(HEADER_LENGTH + body.length);
    writeHeader(frame, 0, { length: body.length, streamId, type: MessageType.Response, flags: 0 });
    body.copy(frame, HEADER_LENGTH);
    this.write(frame);
  }

  private write(frame: Buffer): void {
    const s = this.stream as Duplex & { writableLength?: number };
    if ((s.writableLength ?? 0) > this.server.maxPendingWrite) {
      // The peer stopped reading (ttrpc#72): drop it rather than buffer without bound.
      this.server.emit("protocolError", this, "peer is not reading; dropping connection");
      this.destroy();
      return;
    }
    s.write(frame);
  }
}

