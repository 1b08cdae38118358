// A unix socket that forwards every connection, byte for byte, to another
// socket, and shows a tap the bytes of both directions. Nothing is parsed on
// the forwarding path: what the two ends see is what they would see without
// the proxy (a frame the tap cannot decode still passes untouched).
import fs from "node:fs";
import net from "node:net";

export interface TapSink {
  requestBytes(b: Buffer): void;
  responseBytes(b: Buffer): void;
  close(reason?: string): void;
}

export interface ProxyOptions {
  listen: string;
  upstream: string;
  /** A tap for one accepted connection (numbered from 1). */
  tap: (conn: number) => TapSink | null;
  /** An accepted connection could not reach the upstream socket. */
  onUpstreamError?: (conn: number, err: Error) => void;
  /** The last open connection closed. */
  onIdle?: () => void;
}

export class UnixProxy {
  private server: net.Server | null = null;
  private conns = 0;
  private readonly live = new Set<net.Socket>();

  constructor(readonly o: ProxyOptions) {}

  async listen(): Promise<void> {
    fs.rmSync(this.o.listen, { force: true });
    const server = net.createServer((c) => this.accept(c));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.o.listen, () => resolve());
    });
    this.server = server;
  }

  get open(): number {
    return this.live.size;
  }

  private accept(client: net.Socket): void {
    const conn = ++this.conns;
    // Held until the upstream answers: containerd may write its first request at once.
    client.pause();
    const up = net.connect(this.o.upstream);
    const tap = this.o.tap(conn);
    this.live.add(client);
    let closed = false;
    const done = (reason?: string) => {
      if (closed) return;
      closed = true;
      tap?.close(reason);
      client.destroy();
      up.destroy();
      this.live.delete(client);
      if (!this.live.size) this.o.onIdle?.();
    };
    up.once("connect", () => {
      client.on("data", (b: Buffer) => {
        tap?.requestBytes(b);
        if (!up.write(b)) client.pause();
      });
      up.on("drain", () => client.resume());
      up.on("data", (b: Buffer) => {
        tap?.responseBytes(b);
        if (!client.write(b)) up.pause();
      });
      client.on("drain", () => up.resume());
      // Half-closes pass through as half-closes.
      client.on("end", () => up.end());
      up.on("end", () => client.end());
      client.resume();
    });
    up.once("error", (e) => {
      this.o.onUpstreamError?.(conn, e);
      done(`upstream: ${e.message}`);
    });
    client.once("error", () => done());
    client.once("close", () => done());
    up.once("close", () => done());
  }

  async close(): Promise<void> {
    for (const c of this.live) c.destroy();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    fs.rmSync(this.o.listen, { force: true });
  }
}
