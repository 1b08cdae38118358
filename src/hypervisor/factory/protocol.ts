// `shimlab factory`'s wire: one JSON object per line each way over a unix
// socket, a request and its answer per connection. The factory is node-local
// and its callers are shims on the same host; a line of JSON is all the
// protocol it needs (Kata's factory speaks gRPC for the same handful of calls).
import type { HypervisorKind } from "../types";

/** Where the factory listens unless told otherwise (the shim's [factory] socket, `--socket`). */
export const DEFAULT_FACTORY_DIR = "/run/shimlab-factory";
export const DEFAULT_FACTORY_SOCKET = `${DEFAULT_FACTORY_DIR}/factory.sock`;

/** A warm sandbox, for the process pid (started at startTime) to hold from now on. */
export interface TakeRequest {
  op: "take";
  kind: HypervisorKind;
  agentRuntime: string;
  cgroupParent: string;
  pid: number;
  startTime: string;
  /** A VM's shape (qemu/warm.ts): QEMU, machine, memory, CPUs, kernel and image, which a warm VM must have. */
  shape?: string;
  /** How many NICs the VM must take at handout (a QEMU pool's VMs have so many hotplug ports). */
  nics?: number;
  /**
   * For a parked shim daemon to hold (held.ts): the factory waits for a ready agent rather than
   * answer "empty", counts it apart from the pods' takes, and learns no taker's cgroups from it.
   */
  parked?: boolean;
}

/**
 * A parked shim daemon for a `start` (native/oneshot.c asks, src/shim/park.ts is what waits): its
 * socket, to hand the daemon's fds and words to. The launcher's own checks follow there.
 */
export interface DaemonRequest {
  op: "daemon";
  /** The launcher's pid: the factory moves the next parked daemons into its cgroups ahead of time. */
  pid?: number;
}

export type FactoryRequest = TakeRequest | DaemonRequest | { op: "status" };

/** A parked daemon handed out: the launcher connects to socket within PARKED_CLAIM_MS. */
export interface ParkedDaemon {
  pid: number;
  socket: string;
}

/** A parked daemon's command line: `<node> <shim-main.js> -park <its socket> <the factory's socket>`. */
export const PARK_ARG = "-park";
/** Its end of the factory's socketpair: "HANDOUT\n" once a launcher was given it; EOF before that, the factory's end. */
export const PARKED_LIFELINE_FD = 4;
export const HANDOUT_WORD = "HANDOUT";
/**
 * What a parked daemon says on its lifeline once it is ready: everything loaded, its socket
 * listening; `PARKED <pid> <start time> <dir>` when it holds a warm agent (held.ts), which is then
 * the pool's to move with it, and to kill with it.
 */
export const PARKED_WORD = "PARKED";
/** How long a parked daemon waits for a warm agent to hold before it parks without one. */
export const PARKED_HOLD_MS = 30_000;
/** How long a handed-out daemon waits for its launcher before it exits. */
export const PARKED_CLAIM_MS = 5_000;

/** A warm QEMU VM handed out: QEMU runs under its keeper (native/vm-keeper.c), which ends with its holder. */
export interface WarmVm {
  /** QEMU's pid and start time. */
  pid: number;
  startTime: string;
  /** Its directory (sockets, the shared directory), which goes with it. */
  dir: string;
  agentSocket: string;
  qmpSocket: string;
  consoleSocket: string;
  sharedDir: string;
  /** Its empty PCIe root ports, for the pod's NICs. */
  hotplugPorts: number;
}

/** A warm sandbox handed out: from the answer on, the taker owns the process and its directory. */
export interface WarmAgent {
  /** The process the taker now holds: the agent, or a VM's keeper. */
  pid: number;
  startTime: string;
  /** The agent's hybrid-vsock socket. */
  socket: string;
  runcRoot: string;
  /** Its directory (socket, state, log), which goes with it. */
  dir: string;
  /** For a QEMU pool: the VM. */
  vm?: WarmVm;
}

export interface FactoryStatus {
  pid: number;
  kind: HypervisorKind;
  agentRuntime: string;
  /** Where its agents put their containers' cgroups (their SHIMLAB_CGROUP_PARENT). */
  cgroupParent: string;
  /** A QEMU pool's VM shape (TakeRequest.shape). */
  shape?: string;
  /** The pool's target size. */
  size: number;
  /** Booted and waiting. */
  ready: number;
  /** The waiting agents' pids, the next to be handed out first. */
  warm: number[];
  booting: number;
  handedOut: number;
  /** Handed to parked shim daemons to hold for the pods they become (not in handedOut). */
  held?: number;
  /** Takes that found the pool empty. */
  misses: number;
  /** Warm agents found dead or stale and replaced. */
  replaced: number;
  /** Parked shim daemons (src/shim/park.ts), when the factory keeps them. */
  daemons?: { size: number; ready: number; starting: number; handedOut: number; misses: number; replaced: number };
}

export type FactoryResponse = { ok: true; agent?: WarmAgent; daemon?: ParkedDaemon; status?: FactoryStatus } | { ok: false; error: string };
