// The processes this one started and has not reaped: what a test of the core
// must leave none of. Only our own children are looked at, never the host's,
// so that tests running beside other work check nothing but themselves.
import fs from "node:fs";

export interface ChildProcessInfo {
  pid: number;
  /** R, S, T (stopped: a paused container), Z (exited, not reaped)… */
  state: string;
  comm: string;
}

export function childrenOf(ppid: number = process.pid): ChildProcessInfo[] {
  const out: ChildProcessInfo[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    const close = stat.lastIndexOf(")");
    const f = stat.slice(close + 2).split(" ");
    if (Number(f[1]) === ppid) out.push({ pid: Number(name), state: f[0], comm: stat.slice(stat.indexOf("(") + 1, close) });
  }
  return out;
}
