// AF_VSOCK to a guest CID, through the native addon (Node has no vsock
// sockets). The addon bridges the vsock stream to a unix socketpair that Node
// can wrap as a stream.
import net from "node:net";
import type { Duplex } from "node:stream";
import { native } from "../../native";
import { abortable, TransportError, type Transport } from "./transport";

/** CIDs 0-2 are reserved: hypervisor, local loopback, host. */
export const VMADDR_CID_HOST = 2;
export const MIN_GUEST_CID = 3;

export class VsockTransport implements Transport {
  constructor(
    readonly cid: number,
    readonly port: number,
    readonly attemptTimeoutMs = 2_000,
  ) {
    if (!Number.isInteger(cid) || cid < 0 || cid > 0xffffffff) throw new TransportError(`invalid vsock cid ${cid}`, "EINVAL");
    if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) throw new TransportError(`invalid vsock port ${port}`, "EINVAL");
  }

  get url(): string {
    return `vsock://${this.cid}:${this.port}`;
  }

  connect(signal: AbortSignal): Promise<Duplex> {
    const p = native()
      .vsockConnect(this.cid, this.port, this.attemptTimeoutMs)
      .then(
        (fd) => new net.Socket({ fd, readable: true, writable: true }),
        (e: NodeJS.ErrnoException) => {
          throw new TransportError(`dial ${this.url}: ${e.message}`, e.code ?? "EUNKNOWN");
        },
      );
    return abortable(p, signal, () => {
      // the attempt finishes by its own timeout; a late socket is closed on arrival
      p.then((s) => s.destroy(), () => {});
    });
  }
}
