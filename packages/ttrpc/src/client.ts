// A ttrpc client: many unary calls in flight on one connection, odd stream ids.
import net from "node:net";
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { FrameReader, HEADER_LENGTH, MESSAGE_LENGTH_MAX, MessageType, writeHeader, type FrameEvent } from "./channel";
import { Code, RpcError } from "./status";
import { afterDeadline, type DeadlineTimer } from "./deadline";
import { Writer } from "./wire";
import { Response } from "./gen/ttrpc";
import type { MessageCodec } from "./message";
import type { CallOptions, ServiceClient, ServiceDef } from "./service";

interface Pending {
  resolve: (payload: Buffer) => void;
  reject: (err: RpcError) => void;
  timer?: DeadlineTimer;
  cleanup?: () => void;
}

export interface ClientOptions {
  /** Applied to calls that give no timeout of their own. */
  defaultTimeoutMs?: number;
}

/** Events: "close" (err?) once the connection is gone; every pending call fails with "ttrpc: closed". */
export class Client extends EventEmitter {
  private readonly reader = new FrameReader();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedErr: RpcError | null = null;
  readonly closed: Promise<void>;

  constructor(
    readonly stream: Duplex,
    private readonly opts: ClientOptions = {},
  ) {
    super();
    let onClosed!: () => void;
    this.closed = new Promise((res) => (onClosed = res));
    stream.on("data", (chunk: Buffer) => this.reader.push(chunk, (e) => this.onFrame(e)));
    stream.resume(); // a transport may hand over a paused stream (after a handshake)
    stream.on("error", (err) => this.fail(new RpcError(Code.Unavailable, `ttrpc: closed: ${err.message}`)));
    stream.on("close", () => {
      this.fail(new RpcError(Code.Unavailable, "ttrpc: closed"));
      onClosed();
    });
  }

  /** Dials a unix socket (a path, or "unix://path"). */
  static dial(address: string, opts: ClientOptions & { connectTimeoutMs?: number } = {}): Promise<Client> {
    const path = address.replace(/^unix:\/\//, "");
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ path });
      let timer: NodeJS.Timeout | undefined;
      if (opts.connectTimeoutMs) {
        timer = setTimeout(() => {
          sock.destroy();
          reject(new RpcError(Code.DeadlineExceeded, `dial ${path}: timed out`));
        }, opts.connectTimeoutMs);
      }
      sock.once("connect", () => {
        if (timer) clearTimeout(timer);
        sock.removeListener("error", onErr);
        resolve(new Client(sock, opts));
      });
      const onErr = (err: Error) => {
        if (timer) clearTimeout(timer);
        reject(new RpcError(Code.Unavailable, `dial ${path}: ${err.message}`));
      };
      sock.once("error", onErr);
    });
  }

  get isClosed(): boolean {
    return this.closedErr !== null;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  close(): void {
    this.stream.destroy();
    this.fail(new RpcError(Code.Unavailable, "ttrpc: closed"));
  }

  private fail(err: RpcError): void {
    if (!this.closedErr) {
      this.closedErr = err;
      this.emit("close", err);
    }
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.timer?.clear();
      p.cleanup?.();
      p.reject(err);
    }
  }

  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId += 2;
      if (this.nextId > 0xffffffff) this.nextId = 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private onFrame(e: FrameEvent): void {
    if (e.kind === "malformed") {
      this.stream.destroy();
      this.fail(new RpcError(Code.Unavailable, `ttrpc: closed: ${e.reason}`));
      return;
    }
    const p = this.pending.get(e.header.streamId);
    if (!p) return; // a call that already timed out, or a stream we never opened
    if (e.kind === "oversize") {
      this.settle(e.header.streamId, p, null, new RpcError(Code.ResourceExhausted, `message length ${e.header.length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`));
      return;
    }
    if (e.header.type !== MessageType.Response) return;
    let res: Response;
    try {
      res = Response.decode(e.body);
    } catch (err) {
      this.settle(e.header.streamId, p, null, new RpcError(Code.Internal, `unmarshal response error: ${(err as Error).message}`));
      return;
    }
    if (res.status && res.status.code !== Code.OK) {
      this.settle(
        e.header.streamId,
        p,
        null,
        new RpcError(res.status.code, res.status.message, res.status.details.map((d) => ({ typeUrl: d.typeUrl, value: d.value }))),
      );
      return;
    }
    this.settle(e.header.streamId, p, res.payload, null);
  }

  private settle(id: number, p: Pending, payload: Buffer | null, err: RpcError | null): void {
    this.pending.delete(id);
    p.timer?.clear();
    p.cleanup?.();
    if (err) p.reject(err);
    else p.resolve(payload!);
  }

  /** One unary call; resolves with the decoded response or rejects with an RpcError. */
  call<Res>(
    service: string,
    method: string,
    requestType: MessageCodec<unknown, any>,
    request: unknown,
    responseType: MessageCodec<Res, unknown>,
    opts: CallOptions = {},
  ): Promise<Res> {
    return this.callRaw(service, method, (w) => requestType.write(request as never, w), opts).then((payload) =>
      responseType.decode(payload),
    );
  }

  /** A call whose request payload the caller writes itself. */
  callRaw(service: string, method: string, writePayload: (w: Writer) => void, opts: CallOptions = {}): Promise<Buffer> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    if (opts.signal?.aborted) return Promise.reject(new RpcError(Code.Canceled, "context canceled"));
    const timeoutMs = opts.timeoutMs ?? this.opts.defaultTimeoutMs;
    const id = this.allocId();
    // Request{service=1, method=2, payload=3, timeout_nano=4, metadata=5} straight into the frame.
    const w = new Writer(256);
    w.reserve(HEADER_LENGTH);
    w.uint32((1 << 3) | 2);
    w.string(service);
    w.uint32((2 << 3) | 2);
    w.string(method);
    const tagAt = w.pos;
    w.uint32((3 << 3) | 2);
    const at = w.fork();
    try {
      writePayload(w);
    } catch (err) {
      return Promise.reject(new RpcError(Code.InvalidArgument, `marshal request error: ${(err as Error).message}`));
    }
    if (w.pos === at + 1) w.pos = tagAt;
    else w.ldelim(at);
    if (timeoutMs && timeoutMs > 0) {
      w.uint32(4 << 3);
      w.int64(Math.round(timeoutMs * 1e6));
    }
    if (opts.metadata) {
      for (const [k, vs] of Object.entries(opts.metadata)) {
        for (const v of Array.isArray(vs) ? vs : [vs]) {
          w.uint32((5 << 3) | 2);
          const a = w.fork();
          w.uint32((1 << 3) | 2);
          w.string(k.toLowerCase());
          w.uint32((2 << 3) | 2);
          w.string(v);
          w.ldelim(a);
        }
      }
    }
    const length = w.pos - HEADER_LENGTH;
    if (length > MESSAGE_LENGTH_MAX) {
      // Refused before sending, so the connection stays usable (ttrpc#171).
      return Promise.reject(
        new RpcError(Code.ResourceExhausted, `message length ${length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`),
      );
    }
    const frame = w.finish();
    writeHeader(frame, 0, { length, streamId: id, type: MessageType.Request, flags: 0 });
    return new Promise<Buffer>((resolve, reject) => {
      const p: Pending = { resolve, reject };
      if (timeoutMs && timeoutMs > 0) {
        p.timer = afterDeadline(timeoutMs, () => {
          if (this.pending.get(id) !== p) return;
          this.settle(id, p, null, new RpcError(Code.DeadlineExceeded, `${service}/${method}: context deadline exceeded`));
        });
      }
      if (opts.signal) {
        const sig = opts.signal;
        const onAbort = () => {
          if (this.pending.get(id) !== p) return;
          this.settle(id, p, null, new RpcError(Code.Canceled, "context canceled"));
        };
        sig.addEventListener("abort", onAbort, { once: true });
        p.cleanup = () => sig.removeEventListener("abort", onAbort);
      }
      this.pending.set(id, p);
      this.stream.write(frame);
    });
  }

  /** A typed stub for a generated service definition. */
  service<S extends ServiceDef>(def: S, defaults: CallOptions = {}): ServiceClient<S> {
    const stub: Record<string, unknown> = {};
    for (const [name, m] of Object.entries(def.methods)) {
      stub[name] = (req: unknown, opts?: CallOptions) =>
        this.call(def.name, m.name, m.requestType, req, m.responseType, opts ? { ...defaults, ...opts } : defaults);
    }
    return stub as ServiceClient<S>;
  }
}
