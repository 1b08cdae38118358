// A process named by pid and start time: a pid alone may have been recycled.
import fs from "node:fs";

/** /proc/<pid>/stat's start time (field 22), or null when no such process. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether pid is still the process that started at startTime (and not a zombie). */
export function processAlive(pid: number, startTime: string): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return f[0] !== "Z" && f[0] !== "X" && f[19] === startTime;
  } catch {
    return false;
  }
}
