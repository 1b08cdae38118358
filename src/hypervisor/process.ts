// The process a sandbox runs in (an agent, QEMU): a child of this shim, or one
// a factory booted and this shim adopted, known by pid and start time only.
import type { ChildProcess } from "node:child_process";
import type { VmExit } from "./types";
import { killRecorded } from "./rundir";
import { processAlive } from "../util/proc";

export interface HostProcess {
  readonly pid: number;
  readonly exited: Promise<VmExit>;
  alive(): boolean;
  kill(signal: NodeJS.Signals): void;
}

export function childProcess(child: ChildProcess): HostProcess {
  // it may have died already, while we waited for it to get ready
  const exited: Promise<VmExit> =
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
      : new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return {
    pid: child.pid!,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    kill: (sig) => void child.kill(sig),
  };
}

/** How often the shim looks for an adopted process (not its child: no exit event) to have gone. */
const ADOPTED_POLL_MS = 200;
/** Once signalled, an adopted process is watched closely: a sandbox's teardown waits on its exit. */
const SIGNALLED_POLL_MS = 2;

/**
 * A process this shim did not spawn, known by pid and start time; its end is seen by polling
 * (no SIGCHLD comes for it): every 200 ms while it serves, every 2 ms once signalled, else each
 * sandbox stop would wait up to 200 ms for an exit that took 5.
 */
export function adoptedProcess(pid: number, startTime: string): HostProcess {
  let timer: NodeJS.Timeout | undefined;
  let resolve!: (x: VmExit) => void;
  const exited = new Promise<VmExit>((r) => (resolve = r));
  let ended = false;
  const watch = (ms: number) => {
    if (ended) return;
    clearInterval(timer);
    timer = setInterval(() => {
      if (processAlive(pid, startTime)) return;
      ended = true;
      clearInterval(timer);
      // not our child: its status went to its parent
      resolve({ code: null, signal: null });
    }, ms);
    timer.unref();
  };
  watch(ADOPTED_POLL_MS);
  return {
    pid,
    exited,
    alive: () => processAlive(pid, startTime),
    kill: (sig) => {
      killRecorded(pid, startTime, sig);
      watch(SIGNALLED_POLL_MS);
    },
  };
}
