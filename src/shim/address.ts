// Where a shim listens: containerd's socket naming, computed as its Go shims do.
import path from "node:path";
import { invalidArgument } from "../errdefs";
import { sha256Hex } from "../util/sha256";

/** containerd 1.6 and 2.x put shim sockets here whatever their own state dir is. */
export const DEFAULT_SOCKET_DIR = "/run/containerd/s";
/** sizeof(sockaddr_un.sun_path) minus the NUL, less containerd's margin. */
export const SOCKET_PATH_LIMIT = 106;

export function socketDir(): string {
  return process.env.SHIMLAB_SOCKET_DIR || DEFAULT_SOCKET_DIR;
}

/** unix:///run/containerd/s/<sha256(address/namespace/group)>, the path containerd's shim.SocketAddress gives. */
export function socketAddress(containerdAddress: string, namespace: string, groupId: string, dir = socketDir()): string {
  const key = path.posix.join(containerdAddress, namespace, groupId);
  const hash = sha256Hex(key);
  const p = path.join(dir, hash);
  if (p.length > SOCKET_PATH_LIMIT) {
    throw invalidArgument(`socket path ${JSON.stringify(p)} is ${p.length} bytes, over the ${SOCKET_PATH_LIMIT}-byte limit of a unix socket`);
  }
  return "unix://" + p;
}

export function socketPath(address: string): string {
  return address.replace(/^unix:\/\//, "");
}
