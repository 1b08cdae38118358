// A shim's own processes, as the tests of the agent's life look at them.
import fs from "node:fs";
import { listProcesses } from "../../src/util/proc";

/** Mock agents whose parent is pid: the agents a shim booted itself (a factory's are not its children). */
export function agentsOf(pid: number): number[] {
  return listProcesses()
    .filter((p) => p.ppid === pid && p.cmdline.includes("mock-agent"))
    .map((p) => p.pid);
}

/** Whether pid runs (a zombie, or a pid gone, does not). */
export function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
