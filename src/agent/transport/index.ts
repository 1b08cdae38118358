// Agent addresses as Kata spells them, and the transport each one means.
import { TransportError, type Transport } from "./transport";
import { UnixTransport, VirtioSerialTransport } from "./unix";
import { HybridVsockTransport } from "./hybrid-vsock";
import { VsockTransport } from "./vsock";

export * from "./transport";
export { UnixTransport, VirtioSerialTransport } from "./unix";
export { HybridVsockTransport } from "./hybrid-vsock";
export { VsockTransport } from "./vsock";
export { PreDialedTransport } from "./predialed";

/** The agent's ttrpc port on vsock, as in Kata. */
export const AGENT_VSOCK_PORT = 1024;

/**
 * Parses an agent address:
 *   vsock://<cid>:<port>            AF_VSOCK
 *   hvsock://<uds path>[:<port>]    hybrid vsock (port defaults to 1024)
 *   virtio-serial://<uds path>      QEMU virtio-serial chardev
 *   unix://<path>, mock://<path>    plain unix socket, no handshake
 */
export function parseAgentAddress(address: string): Transport {
  const m = /^([a-z-]+):\/\/(.*)$/.exec(address);
  if (!m) throw new TransportError(`agent address ${JSON.stringify(address)} has no scheme`, "EINVAL");
  const [, scheme, rest] = m;
  switch (scheme) {
    case "vsock": {
      const v = /^(\d+):(\d+)$/.exec(rest);
      if (!v) throw new TransportError(`vsock address ${JSON.stringify(address)}: want vsock://<cid>:<port>`, "EINVAL");
      return new VsockTransport(Number(v[1]), Number(v[2]));
    }
    case "hvsock": {
      const v = /^(\/.*?)(?::(\d+))?$/.exec(rest);
      if (!v) throw new TransportError(`hybrid vsock address ${JSON.stringify(address)}: want hvsock://<absolute uds path>[:<port>]`, "EINVAL");
      return new HybridVsockTransport(v[1], v[2] === undefined ? AGENT_VSOCK_PORT : Number(v[2]));
    }
    case "virtio-serial":
      if (!rest.startsWith("/")) throw new TransportError(`virtio-serial address needs an absolute path`, "EINVAL");
      return new VirtioSerialTransport(rest);
    case "unix":
    case "mock":
      if (!rest.startsWith("/")) throw new TransportError(`${scheme} address needs an absolute path`, "EINVAL");
      return new UnixTransport(rest, scheme);
    default:
      throw new TransportError(`unknown agent address scheme ${JSON.stringify(scheme)}`, "EINVAL");
  }
}
