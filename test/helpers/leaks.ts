// After each test: nothing of shimlab's may be left running or mounted.
import fs from "node:fs";
import { listProcesses, mountsUnder, settle, shimlabProcesses, type ProcInfo } from "../../src/harness/leaks";

/** Processes living in a cgroup shimlab's agent made (/shimlab/<sandbox>/<container>). */
export function containerProcesses(): ProcInfo[] {
  return listProcesses().filter((p) => {
    try {
      return /:\/shimlab\//.test(fs.readFileSync(`/proc/${p.pid}/cgroup`, "utf8"));
    } catch {
      return false;
    }
  });
}

export async function expectNoLeaks(markers: string[], dirs: string[] = []): Promise<void> {
  const procs = await settle(() => [...shimlabProcesses(markers), ...containerProcesses()], 8_000);
  const mounts = dirs.flatMap((d) => mountsUnder(d));
  const problems: string[] = [];
  if (procs.length) problems.push(`processes left: ${procs.map((p) => `${p.pid} ${p.cmdline}`).join("; ")}`);
  if (mounts.length) problems.push(`mounts left: ${mounts.join(", ")}`);
  if (problems.length) {
    // Clean up so one failure does not cascade, then fail.
    for (const p of procs) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    throw new Error(problems.join("\n"));
  }
}
