// A plain unix stream socket: a host-process agent (Kata's mock:// scheme), or
// the unix end of QEMU's virtio-serial chardev.
import net from "node:net";
import type { Duplex } from "node:stream";
import { abortable, TransportError, type Transport } from "./transport";

export function connectUnix(path: string, signal: AbortSignal): Promise<net.Socket> {
  const sock = net.createConnection({ path });
  const p = new Promise<net.Socket>((resolve, reject) => {
    sock.once("connect", () => {
      sock.removeAllListeners("error");
      resolve(sock);
    });
    sock.once("error", (e: NodeJS.ErrnoException) => reject(new TransportError(`dial unix ${path}: ${e.message}`, e.code ?? "EUNKNOWN")));
  });
  return abortable(p, signal, () => sock.destroy());
}

export class UnixTransport implements Transport {
  constructor(
    readonly path: string,
    readonly scheme = "unix",
  ) {}

  get url(): string {
    return `${this.scheme}://${this.path}`;
  }

  connect(signal: AbortSignal): Promise<Duplex> {
    return connectUnix(this.path, signal);
  }
}

/**
 * QEMU's virtio-serial port behind a unix chardev (server=on,wait=off). The
 * port is one byte stream: a second connection is refused while one is open,
 * and a new one may be made after the first closes.
 */
export class VirtioSerialTransport extends UnixTransport {
  constructor(path: string) {
    super(path, "virtio-serial");
  }
}
