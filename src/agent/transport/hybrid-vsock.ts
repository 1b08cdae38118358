// Hybrid vsock, as Firecracker and Cloud Hypervisor expose a guest's vsock:
// connect to a unix socket, send "CONNECT <port>\n", read "OK <hostport>\n",
// then the same stream carries the guest port's bytes.
import type { Duplex } from "node:stream";
import { connectUnix } from "./unix";
import { abortable, TransportError, type Transport } from "./transport";

/** Kata wraps each handshake in this deadline: a guest kernel can drop the reply (kata#8291). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

export class HybridVsockTransport implements Transport {
  constructor(
    readonly udsPath: string,
    readonly port: number,
    readonly handshakeTimeoutMs = HANDSHAKE_TIMEOUT_MS,
  ) {
    if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) throw new TransportError(`invalid vsock port ${port}`, "EINVAL");
  }

  get url(): string {
    return `hvsock://${this.udsPath}:${this.port}`;
  }

  async connect(signal: AbortSignal): Promise<Duplex> {
    const sock = await connectUnix(this.udsPath, signal);
    const done = new Promise<Duplex>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => {
        cleanup();
        sock.destroy();
        reject(new TransportError(`hybrid vsock ${this.url}: no reply to CONNECT within ${this.handshakeTimeoutMs} ms`, "ETIMEDOUT"));
      }, this.handshakeTimeoutMs);
      const onData = (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        const nl = buf.indexOf(0x0a);
        if (nl < 0) {
          if (buf.length > 512) fail(`reply too long without a newline`);
          return;
        }
        const line = buf.subarray(0, nl).toString("latin1").trim();
        const rest = buf.subarray(nl + 1);
        cleanup();
        if (!/^OK\b/.test(line)) {
          sock.destroy();
          reject(new TransportError(`hybrid vsock ${this.url}: handshake refused: ${JSON.stringify(line)}`, "ECONNREFUSED"));
          return;
        }
        // Bytes after the OK line already belong to the guest stream.
        if (rest.length) sock.unshift(rest);
        resolve(sock);
      };
      const onEnd = () => fail("connection closed during handshake");
      const onErr = (e: Error) => fail(e.message);
      const fail = (why: string) => {
        cleanup();
        sock.destroy();
        reject(new TransportError(`hybrid vsock ${this.url}: ${why}`, "ECONNRESET"));
      };
      const cleanup = () => {
        clearTimeout(timer);
        sock.removeListener("data", onData);
        sock.removeListener("end", onEnd);
        sock.removeListener("error", onErr);
        sock.pause();
      };
      sock.on("data", onData);
      sock.once("end", onEnd);
      sock.once("error", onErr);
      sock.write(`CONNECT ${this.port}\n`);
    });
    return abortable(done, signal, () => sock.destroy());
  }
}
