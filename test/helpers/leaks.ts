// After each test: nothing of shimlab's may be left running or mounted.
import fs from "node:fs";
import { listProcesses, mountsUnder, settle, shimlabProcesses, type ProcInfo } from "../../src/harness/leaks";

/** Processes living in a cgroup shimlab's agent made under parent (<parent>/<sandbox>/<container>). */
export function containerProcesses(parent: string): ProcInfo[] {
  return listProcesses().filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p.pid}/cgroup`, "utf8").includes(`:${parent}/`);
    } catch {
      return false;
    }
  });
}

/** cgroup directories left under parent in any hierarchy. */
export function cgroupDirs(parent: string): string[] {
  const out: string[] = [];
  for (const c of fs.readdirSync("/sys/fs/cgroup")) {
    const d = `/sys/fs/cgroup/${c}${parent}`;
    try {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) out.push(`${d}/${e.name}`);
    } catch {
      /* none */
    }
  }
  return out;
}

export async function expectNoLeaks(markers: string[], dirs: string[] = [], cgroupParent?: string): Promise<void> {
  const procs = await settle(() => [...shimlabProcesses(markers), ...(cgroupParent ? containerProcesses(cgroupParent) : [])], 8_000);
  const mounts = dirs.flatMap((d) => mountsUnder(d));
  const cgroups = cgroupParent ? await settle(() => cgroupDirs(cgroupParent), 2_000) : [];
  const problems: string[] = [];
  if (procs.length) problems.push(`processes left: ${procs.map((p) => `${p.pid} ${p.cmdline}`).join("; ")}`);
  if (mounts.length) problems.push(`mounts left: ${mounts.join(", ")}`);
  if (cgroups.length) problems.push(`cgroups left: ${cgroups.join(", ")}`);
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

/**
 * Processes of any kind (runc's shim, a Go peer, a container in cgroupParent)
 * whose command line mentions one of the markers must be gone; survivors are
 * killed, then reported.
 */
export async function expectNoProcessesMentioning(markers: string[], cgroupParent?: string): Promise<void> {
  const left = await settle(
    () => listProcesses().filter((p) => p.pid !== process.pid && (markers.some((m) => p.cmdline.includes(m)) || (cgroupParent ? containerProcesses(cgroupParent).some((c) => c.pid === p.pid) : false))),
    8_000,
  );
  for (const p of left) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  if (left.length) throw new Error(`processes left: ${left.map((p) => `${p.pid} ${p.cmdline}`).join("; ")}`);
}
