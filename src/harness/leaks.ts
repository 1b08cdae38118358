// What a run may leave behind, looked for the way a person would: processes
// by their command line, mounts by their path, sockets by their name.
import fs from "node:fs";
import path from "node:path";

export interface ProcInfo {
  pid: number;
  ppid: number;
  cmdline: string;
}

export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (cmdline) out.push({ pid: Number(d), ppid, cmdline });
    } catch {
      /* gone */
    }
  }
  return out;
}

/** A shim daemon's script, bundled (dist/bundle) or not (dist/shim), or the failpoint shim's (dist/fp-shim). */
export const SHIM_DAEMON_SCRIPT = /dist\/(?:shim\/main|bundle\/shim-main|fp-shim\/main)\.js/;
/** The mock agent's script, bundled or not. */
export const MOCK_AGENT_SCRIPT = /dist\/(?:mock-agent\/main|bundle\/mock-agent-main)\.js/;

/** shimlab shim daemons, mock agents and QEMUs whose command line mentions any of the markers. */
export function shimlabProcesses(markers: string[] = []): ProcInfo[] {
  return listProcesses().filter((p) => {
    const isOurs = SHIM_DAEMON_SCRIPT.test(p.cmdline) || MOCK_AGENT_SCRIPT.test(p.cmdline) || /qemu-system-x86_64.*shimlab|containerd-shim-shimlab(?:-fp)?-v2/.test(p.cmdline);
    if (!isOurs) return false;
    return markers.length === 0 || markers.some((m) => p.cmdline.includes(m));
  });
}

/** Processes that are children of pid, recursively. */
export function descendants(pid: number, all = listProcesses()): ProcInfo[] {
  const out: ProcInfo[] = [];
  const kids = (p: number) => all.filter((x) => x.ppid === p);
  const stack = kids(pid);
  while (stack.length) {
    const x = stack.pop()!;
    out.push(x);
    stack.push(...kids(x.pid));
  }
  return out;
}

export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m && (m === dir || m.startsWith(dir + "/")));
}

/** shim sockets under dir whose name is one of the given hashes (or any, when none given). */
export function socketsIn(dir: string): string[] {
  try {
    return fs.readdirSync(dir).map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}

/** Waits until check() returns an empty list, or gives up and returns what is left. */
export async function settle<T>(check: () => T[], timeoutMs = 5_000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = check();
    if (!left.length || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}


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

/**
 * Nothing of shimlab's left: no shim daemon, mock agent or QEMU mentioning a
 * marker, no mount under dirs, no container process or cgroup under
 * cgroupParent. Survivors are killed (so one failure does not cascade), then
 * reported as one Error.
 */
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
