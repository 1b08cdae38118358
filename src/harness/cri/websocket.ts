// A small RFC 6455 WebSocket client: enough for the streaming server of
// containerd's CRI plugin (k8s' remotecommand over "channel.k8s.io"). Node 20
// has no WebSocket client of its own. Frames from the client are masked, as
// the RFC requires; fragmented messages are reassembled; pings are answered.
import crypto from "node:crypto";
import http from "node:http";
import type net from "node:net";
import { EventEmitter } from "node:events";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;
/** A message larger than this is a broken peer, not output. */
const MAX_MESSAGE = 64 << 20;

export interface WebSocketMessage {
  binary: boolean;
  data: Buffer;
}

export declare interface WebSocket {
  on(e: "message", f: (m: WebSocketMessage) => void): this;
  on(e: "close", f: (code: number, reason: string) => void): this;
  on(e: "error", f: (err: Error) => void): this;
  on(e: "drain", f: () => void): this;
}

export class WebSocket extends EventEmitter {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentBytes = 0;
  private fragmentBinary = false;
  private closed = false;
  private closeSent = false;

  private constructor(
    private readonly socket: net.Socket,
    readonly protocol: string,
    head: Buffer,
  ) {
    super();
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => this.onData(d));
    socket.on("error", (e) => this.emit("error", e));
    socket.on("close", () => this.finish(1006, "connection closed without a close frame"));
    socket.on("drain", () => this.emit("drain"));
    // After the caller of connect() has had its turn to add listeners.
    if (head.length) setImmediate(() => this.onData(head));
  }

  /** Opens ws:// (or http://, as CRI's streaming URLs are written) with these subprotocols, most wanted first. */
  static connect(url: string, protocols: string[], o: { timeoutMs?: number } = {}): Promise<WebSocket> {
    const u = new URL(url);
    if (u.protocol === "https:" || u.protocol === "wss:") return Promise.reject(new Error(`${url}: TLS streaming servers are not supported`));
    const key = crypto.randomBytes(16).toString("base64");
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: u.hostname,
        port: u.port || 80,
        path: u.pathname + u.search,
        method: "GET",
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": key,
          "Sec-WebSocket-Protocol": protocols.join(", "),
        },
        timeout: o.timeoutMs ?? 10_000,
      });
      req.on("timeout", () => req.destroy(new Error(`${url}: no upgrade within ${o.timeoutMs ?? 10_000} ms`)));
      req.on("error", reject);
      req.on("response", (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => reject(new Error(`${url}: HTTP ${res.statusCode} instead of an upgrade: ${body.trim().slice(0, 300)}`)));
      });
      req.on("upgrade", (res, socket, head) => {
        const accept = crypto.createHash("sha1").update(key + GUID).digest("base64");
        if (res.headers["sec-websocket-accept"] !== accept) {
          socket.destroy();
          return reject(new Error(`${url}: bad Sec-WebSocket-Accept`));
        }
        const protocol = String(res.headers["sec-websocket-protocol"] ?? "");
        if (protocols.length && !protocols.includes(protocol)) {
          socket.destroy();
          return reject(new Error(`${url}: the server chose subprotocol ${JSON.stringify(protocol)}, not one of ${protocols.join(", ")}`));
        }
        resolve(new WebSocket(socket, protocol, head));
      });
      req.end();
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** False when the socket's buffer is full: wait for "drain" before sending more (backpressure). */
  send(data: Buffer, binary = true): boolean {
    return this.writeFrame(binary ? OP.binary : OP.text, data);
  }

  /** Stops reading from the server (its TCP window then holds it up) until resume(). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** A close frame, then the socket once the server answers (or at once if it is gone). */
  close(code = 1000, reason = ""): void {
    if (this.closed || this.closeSent) return;
    const body = Buffer.alloc(2 + Buffer.byteLength(reason));
    body.writeUInt16BE(code, 0);
    body.write(reason, 2);
    this.writeFrame(OP.close, body);
    this.closeSent = true;
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }

  private writeFrame(op: number, payload: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return true;
    const mask = crypto.randomBytes(4);
    const len = payload.length;
    const head = len < 126 ? Buffer.alloc(2) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    head[0] = 0x80 | op;
    if (len < 126) head[1] = 0x80 | len;
    else if (len < 65536) {
      head[1] = 0x80 | 126;
      head.writeUInt16BE(len, 2);
    } else {
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(len), 2);
    }
    const body = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3];
    return this.socket.write(Buffer.concat([head, mask, body]));
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.buf.length < 2) return;
      const fin = (this.buf[0] & 0x80) !== 0;
      const op = this.buf[0] & 0x0f;
      const masked = (this.buf[1] & 0x80) !== 0;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        const big = this.buf.readBigUInt64BE(2);
        if (big > BigInt(MAX_MESSAGE)) return this.fail(`a ${big}-byte frame`);
        len = Number(big);
        off = 10;
      }
      const maskKey = masked ? this.buf.subarray(off, off + 4) : null;
      if (masked) off += 4;
      if (this.buf.length < off + len) return;
      let payload: Buffer = Buffer.from(this.buf.subarray(off, off + len));
      this.buf = this.buf.subarray(off + len);
      if (maskKey) for (let i = 0; i < payload.length; i++) payload[i] ^= maskKey[i & 3];
      switch (op) {
        case OP.ping:
          this.writeFrame(OP.pong, payload);
          break;
        case OP.pong:
          break;
        case OP.close: {
          const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
          const reason = payload.length > 2 ? payload.subarray(2).toString("utf8") : "";
          if (!this.closeSent) this.writeFrame(OP.close, payload.subarray(0, 2));
          this.closeSent = true;
          this.finish(code, reason);
          this.socket.end();
          return;
        }
        case OP.text:
        case OP.binary:
        case OP.continuation: {
          if (op !== OP.continuation) this.fragmentBinary = op === OP.binary;
          this.fragments.push(payload);
          this.fragmentBytes += payload.length;
          if (this.fragmentBytes > MAX_MESSAGE) return this.fail(`a message over ${MAX_MESSAGE} bytes`);
          if (fin) {
            payload = this.fragments.length === 1 ? this.fragments[0] : Buffer.concat(this.fragments, this.fragmentBytes);
            this.fragments = [];
            this.fragmentBytes = 0;
            this.emit("message", { binary: this.fragmentBinary, data: payload });
          }
          break;
        }
        default:
          return this.fail(`unknown opcode ${op}`);
      }
    }
  }

  private fail(why: string): void {
    this.emit("error", new Error(`websocket: ${why}`));
    this.socket.destroy();
    this.finish(1002, why);
  }

  private finish(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.emit("close", code, reason);
  }
}
