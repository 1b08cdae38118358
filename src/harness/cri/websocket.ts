// The WebSocket client for the streaming server of containerd's CRI plugin
// (k8s' remotecommand and portforward over "*.channel.k8s.io"), on the `ws`
// package: RFC 6455 framing, masking, fragments and pings are its job. This
// adapter adds what the stream code needs and ws does not give: socket-like
// backpressure (send returns false past a high-water mark, "drain" follows),
// http(s):// URLs as CRI writes them, and errors that name the URL.
import { EventEmitter } from "node:events";
import WS from "ws";

/** A message larger than this is a broken peer, not output. */
const MAX_MESSAGE = 64 << 20;
/** Bytes queued to the socket past which send() says "wait for drain". */
const HIGH_WATER = 1 << 20;

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
  private queued = 0;
  private blocked = false;

  /** What arrived before the caller of connect() could listen (the server may write with its 101). */
  private early: (() => void)[] | null = [];

  private constructor(private readonly ws: WS) {
    super();
    const deliver = (f: () => void) => (this.early ? this.early.push(f) : f());
    ws.on("message", (data: WS.RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      deliver(() => this.emit("message", { binary: isBinary, data: buf }));
    });
    ws.on("error", (e) => deliver(() => this.emit("error", e instanceof RangeError ? new Error(`a message larger than ${MAX_MESSAGE >> 20} MiB or a bad frame: ${e.message}`) : e)));
    ws.on("close", (code, reason) => deliver(() => this.emit("close", code, reason.toString())));
    setImmediate(() => {
      const early = this.early ?? [];
      this.early = null;
      for (const f of early) f();
    });
  }

  get protocol(): string {
    return this.ws.protocol;
  }

  /** Opens ws:// or wss:// (or http(s)://, as CRI's streaming URLs are written) with these subprotocols, most wanted first. */
  static connect(url: string, protocols: string[], o: { timeoutMs?: number } = {}): Promise<WebSocket> {
    const u = new URL(url);
    if (u.protocol === "http:") u.protocol = "ws:";
    else if (u.protocol === "https:") u.protocol = "wss:";
    const timeout = o.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const ws = new WS(u.toString(), protocols, { handshakeTimeout: timeout, maxPayload: MAX_MESSAGE, perMessageDeflate: false });
      let chosen: string | undefined;
      const fail = (e: Error) => {
        ws.removeAllListeners();
        ws.on("error", () => {});
        ws.terminate();
        const why = chosen !== undefined && !protocols.includes(chosen) ? `the server chose subprotocol ${JSON.stringify(chosen)}, not one of ${protocols.join(", ")}` : e.message;
        reject(new Error(`${url}: ${why}`));
      };
      ws.once("error", fail);
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => fail(new Error(`HTTP ${res.statusCode} instead of an upgrade: ${body.trim().slice(0, 300)}`)));
      });
      ws.once("upgrade", (res) => {
        // ws accepts a missing subprotocol answer; the streaming protocols need the one we asked for.
        chosen = res.headers["sec-websocket-protocol"];
        if (protocols.length && !chosen) fail(new Error(`the server chose no subprotocol, not one of ${protocols.join(", ")}`));
      });
      ws.once("open", () => {
        ws.off("error", fail);
        resolve(new WebSocket(ws));
      });
    });
  }

  get isClosed(): boolean {
    return this.ws.readyState === WS.CLOSING || this.ws.readyState === WS.CLOSED;
  }

  /** Queues one message; false once more than HIGH_WATER bytes wait for the socket ("drain" follows). */
  send(data: Buffer, binary = true): boolean {
    if (this.isClosed) return false;
    this.queued += data.length;
    this.ws.send(data, { binary }, () => {
      this.queued -= data.length;
      if (this.blocked && this.queued < HIGH_WATER / 2) {
        this.blocked = false;
        this.emit("drain");
      }
    });
    if (this.queued >= HIGH_WATER) this.blocked = true;
    return !this.blocked;
  }

  /** Stops reading messages (the peer's writes back up in TCP). */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  /** Sends a close frame; a peer that does not answer it within a second is cut off (ws alone waits 30 s). */
  close(code = 1000, reason = ""): void {
    if (this.isClosed) return;
    this.ws.close(code, reason);
    setTimeout(() => this.ws.terminate(), 1000).unref();
  }
}
