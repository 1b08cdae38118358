// Where a sandbox's agent lives: a VM (QEMU) or a plain host process.
import type net from "node:net";
import type { Transport } from "../agent/transport";
import type { StorageInit } from "../gen/grpc";
import type { InterfaceInit, RouteInit } from "../gen/types";
import type { Logger } from "../util/logger";
import type { OciSpec } from "../oci/spec";

export interface ShareOptions {
  /** Host mounts made below the source later reach the guest ("slave") or do not ("private"). */
  propagation?: "private" | "slave";
}

export interface VmExit {
  code: number | null;
  signal: string | null;
}

/** A driver's name, as configurations and VM records spell it: "none" is the host agent. */
export type HypervisorKind = "none" | "qemu";

export interface SandboxVm {
  readonly kind: HypervisorKind;
  /** Reported as every task's pid, as Kata reports QEMU's (guest pids mean nothing on the host). */
  readonly pid: number;
  readonly agentTransport: Transport;
  /** True when the agent runs in a guest: specs are constrained for it. */
  readonly guest: boolean;
  /** Resolves when the VM or agent process is gone, expectedly or not. */
  readonly exited: Promise<VmExit>;
  /** Makes a host rootfs (or volume) visible to the agent; returns the path the agent sees. */
  shareRootfs(containerId: string, hostPath: string, o?: ShareOptions): Promise<string>;
  unshareRootfs(containerId: string): Promise<void>;
  /** CreateSandbox storages: the shared filesystem as the guest mounts it. */
  sandboxStorages(): StorageInit[];
  /**
   * The pod's network as the agent must set it up in the guest (UpdateInterface, UpdateRoutes),
   * or null where the agent shares the pod's namespace already or there is none.
   */
  readonly network: GuestNetwork | null;
  /**
   * Brings the pod namespace's loopback TCP to the shim (a VM pod on a network of its own, whose
   * servers are in the guest: containerd's PortForward dials localhost there), or null where
   * there is nothing to bring: host networking, or a host agent whose containers share the
   * namespace already. Undone by stop().
   */
  openLoopback(): Promise<LoopbackListener | null>;
  /** Stops the VM or agent process, never leaving it behind. */
  stop(): Promise<void>;
}

/** Connections made to localhost:<port> in a pod's namespace, each with the port asked for. */
export interface LoopbackListener {
  onConnection(handler: (sock: net.Socket, port: number) => void): void;
}

export interface GuestNetwork {
  interfaces: InterfaceInit[];
  routes: RouteInit[];
}

export interface StartOptions {
  sandboxId: string;
  namespace: string;
  /** This sandbox's private directory: sockets, state, logs. */
  runDir: string;
  logger: Logger;
  /** Environment for the agent or VM process. */
  env?: NodeJS.ProcessEnv;
  /** The sandbox's OCI annotations: a hypervisor may take allow-listed settings from them. */
  annotations?: Record<string, string>;
  /** The pod's network namespace (CNI's), from the sandbox's OCI spec; none for host networking. */
  netns?: string;
}

export interface Hypervisor {
  readonly kind: HypervisorKind;
  start(o: StartOptions): Promise<SandboxVm>;
  /** Refuses, before anything starts, a spec this driver cannot honour (a VM and the host's namespaces). */
  admit?(spec: OciSpec): void;
  /**
   * Boots the sandbox's agent or VM now, for a start() with the same run dir to adopt (Kata's VM
   * factory does the same): the shim asks as its daemon starts, so that the boot overlaps
   * containerd's way to Create. A driver whose boot cannot be adopted so has none.
   */
  prestart?(o: StartOptions): void;
  /**
   * Gives back what the driver holds outside the sandboxes it handed out (an agent prestart booted
   * that no start took), as Kata's Cleanup does: the shim calls it as it exits, and when a
   * Create's own configuration replaces the one the daemon started with.
   */
  release(): Promise<void>;
}

/**
 * What `delete` reaps after the shim died: the whole sandbox, or one container of a pod (containerId),
 * whose sandbox may still have others.
 */
export interface ReapScope {
  sandboxId: string;
  containerId?: string;
}

/** Runs a command to its end: its stdout, or a throw whose `stderr` holds what it complained. */
export type CommandRunner = (cmd: string, args: string[]) => string;

export interface ReapContext {
  run: CommandRunner;
  warn(message: string): void;
}

/**
 * A driver's static reaper: undoes what a VM record of its kind says, with no VM object and no shim
 * (Kata's sandbox cleanup from its persisted state). Each step is tried whatever became of the last:
 * a failure is warned about, not thrown.
 */
export type Reaper = (rec: VmRecord, scope: ReapScope, cx: ReapContext) => void;

/**
 * What `delete` needs to clean up after a shim that died: written when the VM starts, read back by
 * the reaper of its kind (reapers.ts).
 */
export interface VmRecord {
  kind: HypervisorKind;
  pid: number;
  /** /proc/<pid>/stat start time, so a recycled pid is never killed. */
  startTime: string;
  agentUrl: string;
  /** The host agent's runc root: its containers outlive it. */
  runcRoot?: string;
  extraPids?: { pid: number; startTime: string }[];
  /** Directories of the sandbox's outside its run dir (a factory's agent keeps its own): removed with it. */
  dirs?: string[];
  /** Taps made in the pod's network namespace, for `delete` to remove after a crash. */
  netns?: string;
  nics?: { hostIf: string; tap: string }[];
  /** The loopback redirect in the pod's namespace (qemu/loopback-commands.ts), for `delete` to remove. */
  loopback?: { netns: string; port: number; comment: string };
}
