// Processes from /proc: a process named by pid and start time (a pid alone
// may have been recycled), and every process with its command line.
import fs from "node:fs";
import os from "node:os";

/** /proc/<pid>/stat's fields after the command name (state is [0], ppid [1], start time [19]); null when no such process. */
function statFields(pid: number | string): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** /proc/<pid>/stat's start time (field 22), or null when no such process. */
export function processStartTime(pid: number): string | null {
  return statFields(pid)?.[19] ?? null;
}

/** The kernel's PF_EXITING in /proc/<pid>/stat's flags (field 9): the process is in exit(). */
const PF_EXITING = 0x4;

/**
 * Whether pid is gone, a zombie, or already exiting: a process killed with SIGKILL still holds
 * its sockets for a moment while the kernel tears it down, and a connection can still be accepted
 * by its listener then.
 */
export function processEnding(pid: number): boolean {
  const f = statFields(pid);
  return !f || f[0] === "Z" || f[0] === "X" || (Number(f[6]) & PF_EXITING) !== 0;
}

/** Whether pid is still the process that started at startTime (and not a zombie). */
export function processAlive(pid: number, startTime: string): boolean {
  const f = statFields(pid);
  return !!f && f[0] !== "Z" && f[0] !== "X" && f[19] === startTime;
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** Its arguments joined by spaces. */
  cmdline: string;
}

/** Every process on the host with a command line (kernel threads have none). */
export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
      const f = statFields(d);
      if (cmdline && f) out.push({ pid: Number(d), ppid: Number(f[1]), cmdline });
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * Sets the niceness of every thread of pid. Linux keeps a niceness per thread and setpriority(2)
 * on a pid changes only its main thread: a process reniced after it started keeps its other
 * threads (Node's libuv pool and V8's workers) where they were, and new threads inherit from
 * whichever thread makes them. Returns how many threads took it.
 */
export function setProcessPriority(pid: number, priority: number): number {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  let n = 0;
  for (const tid of tids) {
    try {
      os.setPriority(Number(tid), priority);
      n++;
    } catch {
      /* a thread that just ended */
    }
  }
  return n;
}
