// Loads native/build/shimlab.node lazily: the shim's start and delete paths
// never need it, and a missing addon is a clear error only where it is used.
import path from "node:path";

export interface NativeAddon {
  setChildSubreaper(): boolean;
  /** null while the process runs; status is the exit code or 128+signal. pid -1: any child that exited (null: none has; ECHILD: no children). */
  waitpid(pid: number): { pid: number; status: number } | null;
  /** mount(2); fstype and data "" for none. */
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount2(target: string, flags: number): void;
  setWinsize(fd: number, rows: number, cols: number): void;
  getWinsize(fd: number): { rows: number; cols: number };
  openpty(): { master: number; slave: number; name: string };
  setNonBlocking(fd: number, on?: boolean): void;
  consoleListen(path: string): number;
  /** A listening unix socket fd that no libuv handle owns (so nothing unlinks it at exit). */
  listenUnix(path: string, backlog?: number): number;
  consoleReceive(listenFd: number, timeoutMs: number): Promise<number>;
  vsockConnect(cid: number, port: number, timeoutMs: number): Promise<number>;
  closeFd(fd: number): void;
  /** O_ASYNC on fd, owned by this process (SIGIO when it becomes readable, or a virtio-serial port's host comes), or off. */
  setAsync(fd: number, on: boolean): void;
  /** A real pipe(2), close-on-exec at both ends. */
  pipe(): { read: number; write: number };
  /** posix_spawn in a new session; fds[i] becomes the child's fd i (-1: /dev/null). Returns the pid. */
  spawnDetached(file: string, argv: string[], env: string[], cwd: string, fds: number[]): number;
  /** A listening TCP socket fd made inside the network namespace at netnsPath (port 0: any free one). */
  listenTcpInNetns(netnsPath: string, ipv4: string, port: number, backlog?: number): number;
  /** Where a redirected connection was going (SO_ORIGINAL_DST); throws ENOENT when netfilter tracked none. */
  originalDst(fd: number): { address: string; port: number };
  /** The tap `name` of a network namespace, opened there (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR): an fd for QEMU's getfd. */
  openTapInNetns(netnsPath: string, name: string): number;
  /** A NETLINK_ROUTE socket fd, made in the network namespace at netnsPath, or in this process's. */
  netlinkRoute(netnsPath?: string | null): number;
  /** Sends one netlink request and returns its replies (those with its sequence number), up to its DONE or ERROR. Blocking; 5 s at most per read. */
  netlinkTalk(fd: number, request: Buffer): Buffer;
  /** One sendmsg of data with fd as SCM_RIGHTS on a unix socket's fd. */
  sendWithFd(socketFd: number, data: Buffer, fd: number): void;
  /** An ASCII file as a string over a read-only mapping of it (shared pages, not heap); null when it cannot be. */
  mapLatin1(path: string): string | null;
  /** malloc_trim(0): glibc gives its heaps' free pages back; true when it released any. */
  mallocTrim(): boolean;
  /**
   * A parked daemon's wait (src/shim/park.ts), blocking: a launcher's connection on listenFd with its
   * words and fds, or why none will come (the lifeline's EOF before a HANDOUT, or claimMs after one).
   */
  awaitHandoff(listenFd: number, lifelineFd: number, claimMs: number): { conn: number; pid: number; data: Buffer; fds: number[] } | { gone: string };
  /** Says word on conn and waits for the launcher's "GO\n"; false when it went on without us. Closes conn. */
  confirmHandoff(conn: number, word: string, timeoutMs: number): boolean;
  /** The launcher's side (src/shim/start.ts): the words and fds to a parked daemon; its pid once it said READY (and was told GO), else why not. */
  handOff(parkSocket: string, data: Buffer, fds: number[], timeoutMs: number): number | string;
  dup2(from: number, to: number): void;
  /** Takes every resource limit of pid as this process's own. */
  adoptLimitsOf(pid: number): void;
}

let cached: NativeAddon | null = null;
let loadError: Error | null = null;

export function addonPath(): string {
  return process.env.SHIMLAB_NATIVE ?? path.resolve(__dirname, "..", "..", "native", "build", "shimlab.node");
}

/** The static program that holds a shim-sandboxer pod's namespaces, built beside the addon. */
export function sandboxInitPath(): string {
  return process.env.SHIMLAB_SANDBOX_INIT ?? path.join(path.dirname(addonPath()), "sandbox-init");
}

export function native(): NativeAddon {
  if (cached) return cached;
  // the bundle's loader (util/code-cache) may have loaded it already, to map the bundle's source
  const early = (globalThis as Record<symbol, unknown>)[Symbol.for("shimlab.native")] as NativeAddon | undefined;
  if (early) return (cached = early);
  if (loadError) throw loadError;
  try {
    // process.dlopen, not require: inside a startup snapshot (the guest's agent) require knows only built-ins.
    const m = { exports: {} as NativeAddon };
    process.dlopen(m, addonPath());
    cached = m.exports;
    return cached;
  } catch (e) {
    loadError = new Error(`shimlab native addon unavailable (${addonPath()}): ${(e as Error).message}; run "npm run build:native"`);
    throw loadError;
  }
}

export function hasNative(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}
