// kubectl port-forward, the CRI way: RuntimeService.PortForward returns a URL
// on containerd's streaming server, which speaks Kubernetes' portforward over
// a WebSocket (k8s.io/kubelet/pkg/cri/streaming/portforward, "websocket.go"):
//  - the ports are the CRI request's (the server ignores the URL's ?port=);
//  - for the i-th port, channel 2i carries data both ways and 2i+1 the
//    server's error text; each binary message starts with its channel byte;
//  - the server opens each of the two channels with the port as 2 bytes,
//    little-endian, which are not data;
//  - one WebSocket carries one TCP connection per port: the server dials the
//    pod's localhost:<port> once, and closes the WebSocket when that
//    connection ends. Every local connection therefore gets a PortForward call
//    and a WebSocket of its own (a URL's token is good for one use anyway);
//  - there is no half-close: a local client's FIN cannot be passed on, so it
//    is kept until the server ends the stream (an HTTP client that half-closes
//    still gets its answer).
// SPDY, kubectl's other transport, carries several connections per session;
// containerd serves both, and critest's portforward spec uses SPDY.
import { EventEmitter } from "node:events";
import net from "node:net";
import type { CriClient } from "./client";
import { WebSocket } from "./websocket";

/** wsstream's binary channel protocol, the same name remotecommand's v4 uses. */
export const PORTFORWARD_PROTOCOL = "v4.channel.k8s.io";
const DATA = 0;
const ERROR = 1;

export interface ForwardedPort {
  /** 127.0.0.1:<local> here... */
  local: number;
  /** ...to localhost:<remote> in the pod's network namespace. */
  remote: number;
}

/** "[LOCAL:]REMOTE" as kubectl takes it; LOCAL 0 (or ":REMOTE") picks a free port, LOCAL absent means the same port. */
export function parsePortSpec(spec: string): ForwardedPort {
  const m = /^(?:(\d*):)?(\d+)$/.exec(spec);
  const num = (s: string, what: string, min: number) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min || n > 65535) throw new Error(`port spec ${JSON.stringify(spec)}: ${what} port must be ${min}..65535`);
    return n;
  };
  if (!m) throw new Error(`port spec ${JSON.stringify(spec)}: want [LOCAL:]REMOTE`);
  const remote = num(m[2], "remote", 1);
  const local = m[1] === undefined ? remote : m[1] === "" ? 0 : num(m[1], "local", 0);
  return { local, remote };
}

/** One forwarded connection's server side: bytes of the remote port, and the server's complaint if any. */
export declare interface PortForwardStream {
  on(e: "data", f: (d: Buffer) => void): this;
  on(e: "end", f: (error: string | null) => void): this;
  on(e: "drain", f: () => void): this;
}

export class PortForwardStream extends EventEmitter {
  private readonly header = [Buffer.alloc(0), Buffer.alloc(0)];
  private errorText = "";
  private ended = false;

  private constructor(
    private readonly ws: WebSocket,
    readonly port: number,
  ) {
    super();
    ws.on("message", (m) => {
      if (!m.binary || !m.data.length) return;
      const ch = m.data[0];
      if (ch !== DATA && ch !== ERROR) return; // one port per stream: no other channel is ours
      let body = m.data.subarray(1);
      // The first two bytes of each channel name its port; they may come split or with data.
      const h = this.header[ch];
      if (h.length < 2) {
        const need = 2 - h.length;
        this.header[ch] = Buffer.concat([h, body.subarray(0, need)]);
        body = body.subarray(need);
        if (this.header[ch].length === 2 && this.header[ch].readUInt16LE(0) !== port) {
          this.errorText ||= `the server opened channel ${ch} for port ${this.header[ch].readUInt16LE(0)}, not ${port}`;
        }
      }
      if (!body.length) return;
      if (ch === DATA) this.emit("data", body);
      else this.errorText += body.toString("utf8");
    });
    ws.on("drain", () => this.emit("drain"));
    ws.on("error", () => {}); // its close follows
    ws.on("close", (code, reason) => {
      if (this.ended) return;
      this.ended = true;
      const abnormal = code !== 1000 && code !== 1005 && !this.errorText ? `stream closed (${code}${reason ? `: ${reason}` : ""})` : null;
      this.emit("end", this.errorText.trim() || abnormal);
    });
  }

  /** Asks CRI for a URL for this pod and port, and opens it. */
  static async open(cri: CriClient, podSandboxId: string, port: number, o: { timeoutMs?: number } = {}): Promise<PortForwardStream> {
    const { url } = await cri.runtime.PortForward({ podSandboxId, port: [port] });
    return PortForwardStream.connect(url, port, o);
  }

  static async connect(url: string, port: number, o: { timeoutMs?: number } = {}): Promise<PortForwardStream> {
    return new PortForwardStream(await WebSocket.connect(url, [PORTFORWARD_PROTOCOL], o), port);
  }

  /** False when the WebSocket's buffer is full: wait for "drain". */
  write(d: Buffer): boolean {
    return this.ws.send(Buffer.concat([Buffer.of(DATA), d]));
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  close(): void {
    this.ws.close();
  }
}

/** Joins a local connection to a stream: backpressure both ways; an error from the server resets the local side. */
export function splice(local: net.Socket, stream: PortForwardStream, onError: (msg: string) => void): Promise<void> {
  return new Promise((resolve) => {
    stream.on("data", (d) => {
      if (!local.write(d)) {
        stream.pause();
        local.once("drain", () => stream.resume());
      }
    });
    stream.on("drain", () => local.resume());
    local.on("data", (d: Buffer) => {
      if (!stream.write(d)) local.pause();
    });
    // No half-close in this protocol: the local FIN waits for the server's end of the stream.
    local.on("end", () => {});
    local.on("error", () => stream.close());
    local.on("close", () => {
      stream.close();
      resolve();
    });
    stream.on("end", (error) => {
      if (error) {
        onError(error);
        if (!local.destroyed) local.resetAndDestroy();
      } else local.end();
      resolve();
    });
  });
}

/**
 * Listens on 127.0.0.1 for each port and forwards every connection to the pod through CRI, as
 * `kubectl port-forward` does. close() stops listening and resets the connections still open.
 */
export class PortForwarder {
  private readonly servers: net.Server[] = [];
  private readonly open = new Set<net.Socket>();
  readonly bound: ForwardedPort[] = [];

  constructor(
    private readonly cri: CriClient,
    private readonly podSandboxId: string,
    private readonly ports: ForwardedPort[],
    private readonly o: { onError?: (port: ForwardedPort, msg: string) => void; onConnection?: (port: ForwardedPort) => void } = {},
  ) {}

  async listen(): Promise<ForwardedPort[]> {
    for (const p of this.ports) {
      const srv = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => void this.forward(sock, p));
      await new Promise<void>((resolve, reject) => {
        srv.once("error", reject);
        srv.listen(p.local, "127.0.0.1", () => {
          srv.off("error", reject);
          resolve();
        });
      });
      this.servers.push(srv);
      this.bound.push({ local: (srv.address() as net.AddressInfo).port, remote: p.remote });
    }
    return this.bound;
  }

  private async forward(sock: net.Socket, p: ForwardedPort): Promise<void> {
    this.open.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => this.open.delete(sock));
    const bound = this.bound[this.ports.indexOf(p)] ?? p;
    this.o.onConnection?.(bound);
    let stream: PortForwardStream;
    try {
      stream = await PortForwardStream.open(this.cri, this.podSandboxId, p.remote);
    } catch (e) {
      this.o.onError?.(bound, (e as Error).message);
      sock.resetAndDestroy();
      return;
    }
    const done = splice(sock, stream, (msg) => this.o.onError?.(bound, msg));
    sock.resume();
    await done;
  }

  async close(): Promise<void> {
    for (const s of this.open) s.resetAndDestroy();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }
}
