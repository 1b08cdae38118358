// The guest's end of shimlab.v1.PortForward: each Dial is a TCP connection to
// the guest's 127.0.0.1:<port>, carried by the shim's relay (src/pod/port-relay.ts)
// from the pod namespace's loopback. Calls are unary on the agent's one ttrpc
// connection, as kata's stdio calls are, so backpressure is explicit:
//  - guest → host: what the guest's server sends is buffered up to READ_BUFFER
//    bytes, then its socket is paused until a Read takes the bytes; only one
//    Read waits per stream at a time;
//  - host → guest: Write answers when the guest's kernel has taken the bytes,
//    and the relay sends no more until it has the answer.
import net from "node:net";
import type { PortForward, StreamReadRequest } from "../gen/shimlab.v1";
import type { ServiceImpl } from "../ttrpc/service";
import { aborted, canceled, deadlineExceeded, ErrdefsError, failedPrecondition, invalidArgument, notFound, resourceExhausted } from "../errdefs";
import type { Logger } from "../util/logger";

/** Unread guest bytes held per stream before its socket is paused. */
export const READ_BUFFER = 256 << 10;
/** One Read answers with at most this much (well under ttrpc's 4 MiB frame). */
export const MAX_READ = 256 << 10;
/** Streams open at once: a relay gone wrong runs out of these, not of the guest's memory. */
export const MAX_STREAMS = 1024;

export interface PortForwardOptions {
  logger: Logger;
  /** Where Dial connects (default 127.0.0.1): the guest's loopback, as containerd dials localhost on runc. */
  host?: string;
  dialTimeoutMs?: number;
}

/** Node's errno for a socket failure, as a status the relay can act on. */
function socketError(what: string, e: NodeJS.ErrnoException): ErrdefsError {
  const kind = e.code === "ECONNREFUSED" || e.code === "EHOSTUNREACH" || e.code === "ENETUNREACH" ? "Unavailable" : e.code === "ECONNRESET" || e.code === "EPIPE" ? "Aborted" : "Unknown";
  return new ErrdefsError(kind, `${what}: ${e.message}`, { cause: e });
}

class GuestStream {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private error: ErrdefsError | null = null;
  private reader: { len: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private writeClosed = false;

  constructor(
    readonly id: number,
    readonly port: number,
    private readonly sock: net.Socket,
  ) {
    sock.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      if (this.buffered >= READ_BUFFER) sock.pause();
      this.serve();
    });
    sock.on("end", () => {
      this.ended = true;
      this.serve();
    });
    sock.on("error", (e) => {
      this.error = socketError(`127.0.0.1:${port} in the guest`, e);
      this.serve();
    });
    sock.on("close", () => {
      this.ended = true;
      this.serve();
    });
  }

  /** Hands buffered bytes (or the end, or the error) to a waiting Read. */
  private serve(): void {
    const r = this.reader;
    if (!r) return;
    if (this.buffered > 0) {
      this.reader = null;
      r.resolve(this.take(r.len));
    } else if (this.error) {
      this.reader = null;
      r.reject(this.error);
    } else if (this.ended) {
      this.reader = null;
      r.resolve(Buffer.alloc(0));
    }
  }

  private take(max: number): Buffer {
    const out: Buffer[] = [];
    let n = 0;
    while (this.chunks.length && n < max) {
      const c = this.chunks[0];
      if (n + c.length <= max) {
        out.push(c);
        n += c.length;
        this.chunks.shift();
      } else {
        out.push(c.subarray(0, max - n));
        this.chunks[0] = c.subarray(max - n);
        n = max;
      }
    }
    this.buffered -= n;
    if (this.buffered < READ_BUFFER && !this.ended && this.sock.isPaused()) this.sock.resume();
    return out.length === 1 ? out[0] : Buffer.concat(out, n);
  }

  read(len: number, signal: AbortSignal): Promise<Buffer> {
    if (this.reader) return Promise.reject(failedPrecondition(`port-forward stream ${this.id}: a Read is already waiting`));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        if (this.reader?.resolve !== done) return;
        this.reader = null;
        reject(canceled(`port-forward stream ${this.id}: Read cancelled`));
      };
      const done = (b: Buffer) => {
        signal.removeEventListener("abort", onAbort);
        resolve(b);
      };
      this.reader = {
        len,
        resolve: done,
        reject: (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.serve();
    });
  }

  write(data: Buffer): Promise<number> {
    if (this.writeClosed) return Promise.reject(failedPrecondition(`port-forward stream ${this.id}: Write after CloseWrite`));
    if (this.error) return Promise.reject(this.error);
    if (this.sock.destroyed) return Promise.reject(aborted(`port-forward stream ${this.id}: the guest connection is closed`));
    return new Promise((resolve, reject) =>
      this.sock.write(data, (e) => (e ? reject(this.error ?? socketError(`127.0.0.1:${this.port} in the guest`, e)) : resolve(data.length))),
    );
  }

  closeWrite(): void {
    if (this.writeClosed) return;
    this.writeClosed = true;
    this.sock.end();
  }

  close(reset: boolean): void {
    if (reset) this.sock.resetAndDestroy();
    else this.sock.destroy();
    this.ended = true;
    this.serve();
  }
}

/** The agent's PortForward service; close() ends every stream (sandbox destroyed, agent exiting). */
export class GuestPortForward {
  readonly service: ServiceImpl<typeof PortForward>;
  private readonly streams = new Map<number, GuestStream>();
  private nextId = 1;

  constructor(private readonly o: PortForwardOptions) {
    this.service = {
      Dial: async (req) => ({ streamId: await this.dial(req.port) }),
      Write: async (req) => ({ len: await this.stream(req.streamId).write(req.data) }),
      Read: async (req, ctx) => ({ data: await this.read(req, ctx.signal) }),
      CloseWrite: (req) => {
        this.stream(req.streamId).closeWrite();
        return {};
      },
      Close: (req) => {
        const s = this.stream(req.streamId);
        this.streams.delete(s.id);
        s.close(req.reset);
        return {};
      },
    };
  }

  get open(): number {
    return this.streams.size;
  }

  private stream(id: number): GuestStream {
    const s = this.streams.get(id);
    if (!s) throw notFound(`port-forward stream ${id} not found`);
    return s;
  }

  private read(req: StreamReadRequest, signal: AbortSignal): Promise<Buffer> {
    const len = req.len === 0 ? MAX_READ : Math.min(req.len, MAX_READ);
    return this.stream(req.streamId).read(len, signal);
  }

  private dial(port: number): Promise<number> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) return Promise.reject(invalidArgument(`port ${port}: want 1..65535`));
    if (this.streams.size >= MAX_STREAMS) return Promise.reject(resourceExhausted(`${MAX_STREAMS} port-forward streams are open already`));
    const host = this.o.host ?? "127.0.0.1";
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port, allowHalfOpen: true });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(deadlineExceeded(`dial ${host}:${port} in the guest: no answer in ${this.o.dialTimeoutMs ?? 10_000} ms`));
      }, this.o.dialTimeoutMs ?? 10_000);
      sock.once("error", (e) => {
        clearTimeout(timer);
        reject(socketError(`dial ${host}:${port} in the guest`, e));
      });
      sock.once("connect", () => {
        clearTimeout(timer);
        sock.removeAllListeners("error");
        sock.setNoDelay(true);
        const id = this.nextId++;
        this.streams.set(id, new GuestStream(id, port, sock));
        this.o.logger.debug("port-forward stream opened", { stream: id, port });
        resolve(id);
      });
    });
  }

  /** Ends every stream: nothing is carried for a sandbox that is gone. */
  close(): void {
    for (const s of this.streams.values()) s.close(true);
    this.streams.clear();
  }
}
