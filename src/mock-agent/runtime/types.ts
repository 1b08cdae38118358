// What runs a container for the mock agent: runc (isolated) or the host (not).
import type { Readable, Writable } from "node:stream";
import type { OciLinuxResources, OciProcess, OciSpec } from "../../oci/spec";
import type { CgroupStatsInit } from "../../gen/grpc";

export interface RuntimeProcess {
  readonly pid: number;
  readonly stdin: Writable | null;
  /** With a terminal: the pty master's output. */
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly terminal: boolean;
  resize(rows: number, cols: number): void;
  closeStdin(): void;
  /** The exit status (code, or 128+signal) once the process is reaped. */
  readonly exit: Promise<number>;
}

export interface ContainerConfig {
  id: string;
  /** A directory the runtime may use for this container's bundle and files. */
  dir: string;
  spec: OciSpec;
  /** Namespaces to join: the sandbox container's, for containers of a pod. */
  join?: { ipc?: string; uts?: string; pid?: string; network?: string };
  cgroupsPath?: string;
}

export interface Runtime {
  readonly name: "runc" | "crun" | "host";
  /** Whether containers get their own namespaces and rootfs. */
  readonly isolated: boolean;
  /** Prepares the container; may return its init process already (runc create) or only at start. */
  create(c: ContainerConfig): Promise<RuntimeProcess | null>;
  start(id: string): Promise<RuntimeProcess | null>;
  exec(id: string, execId: string, proc: OciProcess): Promise<RuntimeProcess>;
  /** Signals one process, or every process of the container. */
  signal(id: string, target: RuntimeProcess | "all", sig: number): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  stats(id: string): Promise<CgroupStatsInit>;
  update(id: string, r: OciLinuxResources): Promise<void>;
  /** OOM kills seen in the container's memory cgroup so far. */
  oomKills(id: string): number;
  /** Kills whatever is left and forgets the container. */
  destroy(id: string): Promise<void>;
  /** Pids of every process in the container, for diagnostics. */
  pids(id: string): Promise<number[]>;
  /** Removes a sandbox's cgroup directory once its containers are gone (Kata's cgroup leaks, #6232). */
  removeCgroup(cgroupPath: string): void;
}
