// What a run may leave behind, looked for the way a person would: processes
// by their command line, mounts by their path, sockets by their name; and
// only what this run left, so that two copies of the suite on one machine
// (two checkouts, two CI jobs) never report, or kill, each other's processes.
//
// A process is this run's (runProcesses) when:
// - its environment carries this run's SHIMLAB_RUN_ID (src/harness/run-id.ts).
//   This is the scope that survives what our processes do: a shim daemon
//   re-parents to init after `start`, containerd and CRI-O spawn the shims,
//   the mock agent outlives a killed shim, QEMU may daemonize; all of them
//   keep the environment they were started with, and containerd, CRI-O and
//   shimlab pass theirs on unasked, so nothing gains a test hook for it.
// - or an ancestor is: container processes run with the container's own
//   environment, but below a shim or agent that carries the id.
// - or it lives in a cgroup parent the check names: containers whose shim
//   was killed are re-parented away, but stay in the instance's cgroup parent.
// - or its command line names a directory the check names as the run's own
//   (made by mkdtemp, so no other run's): a logging binary the shim started
//   with an empty environment, orphaned when the shim went.
// Not a process tree alone (the daemons leave it), not a cgroup per run (the
// host is cgroup v1, containerd and runc place shims and containers in cgroups
// of their own choosing), not a shared directory prefix (a /tmp/scn- prefix is
// every copy's).
//
// Mounts, sockets and cgroup directories belong to one directory or cgroup
// parent, each instance's own (mkdtemp), so their checks are scoped by the
// paths they are given; a marker (an address, a directory) then picks one
// instance's processes among the run's.
import fs from "node:fs";
import path from "node:path";
import { runId, RUN_ID_VAR } from "./run-id";
import { listProcesses, type ProcInfo } from "../util/proc";

export { runId, RUN_ID_VAR } from "./run-id";
// Every process on the host (a leak check wants runProcesses()): util/proc reads /proc for the shim's layers and the harness alike.
export { listProcesses, type ProcInfo } from "../util/proc";

/** A shim daemon's script, bundled (dist/bundle) or not (dist/shim), or the failpoint shim's (dist/fp-shim). */
export const SHIM_DAEMON_SCRIPT = /dist\/(?:shim\/main|bundle\/shim-main|fp-shim\/main)\.js/;
/** The mock agent's script, bundled or not. */
export const MOCK_AGENT_SCRIPT = /dist\/(?:mock-agent\/main|bundle\/mock-agent-main)\.js/;

/** Whether pid's environment, as it was exec'd with, holds entry ("NAME=value"). */
export function environHas(pid: number, entry: string): boolean {
  try {
    return ("\0" + fs.readFileSync(`/proc/${pid}/environ`, "latin1")).includes(`\0${entry}\0`);
  } catch {
    return false;
  }
}

/** Whether pid lives in a cgroup below parent (or, with itself, in parent), in any hierarchy. */
export function inCgroupUnder(pid: number, parent: string, itself = false): boolean {
  try {
    return fs
      .readFileSync(`/proc/${pid}/cgroup`, "utf8")
      .split("\n")
      .some((l) => l.includes(`:${parent}/`) || (itself && l.endsWith(`:${parent}`)));
  } catch {
    return false;
  }
}

export interface RunScope {
  /** Cgroups of this run's instances: processes in them or below are the run's whatever their parent. */
  cgroupParents?: string[];
  /** Directories this run made (mkdtemp): a process naming one in its command line is the run's. */
  dirs?: string[];
  /** Another run's id (a test's); this run's by default. */
  id?: string;
}

/**
 * A test for "this run's process" over one snapshot of the process table (the
 * rules are in the header). Environments are read lazily and once per pid, so
 * filtering candidates first keeps a check cheap.
 */
export function runScope(o: RunScope = {}, all: ProcInfo[] = listProcesses()): (p: ProcInfo) => boolean {
  const entry = `${RUN_ID_VAR}=${o.id ?? runId()}`;
  const parents = o.cgroupParents ?? [];
  const dirs = (o.dirs ?? []).map((d) => d.replace(/\/+$/, ""));
  const byPid = new Map(all.map((p) => [p.pid, p]));
  const known = new Map<number, boolean>();
  const ours = (pid: number, depth: number): boolean => {
    const k = known.get(pid);
    if (k !== undefined) return k;
    const cmdline = byPid.get(pid)?.cmdline ?? "";
    let r = environHas(pid, entry) || parents.some((c) => inCgroupUnder(pid, c, true)) || dirs.some((d) => cmdline.includes(d + "/") || cmdline.endsWith(d) || cmdline.includes(d + " "));
    // init and the kernel's threads carry nobody's id; a chain longer than 64 is a pid reused mid-walk.
    const ppid = byPid.get(pid)?.ppid ?? 0;
    if (!r && ppid > 1 && depth < 64) r = ours(ppid, depth + 1);
    known.set(pid, r);
    return r;
  };
  return (p) => ours(p.pid, 0);
}

/** This run's processes but the caller. */
export function runProcesses(o: RunScope = {}, all: ProcInfo[] = listProcesses()): ProcInfo[] {
  const inRun = runScope(o, all);
  return all.filter((p) => p.pid !== process.pid && inRun(p));
}

/** A shimlab shim (its binary or its daemon's script), a mock agent, or a QEMU of shimlab's. */
function isShimlab(p: ProcInfo): boolean {
  return SHIM_DAEMON_SCRIPT.test(p.cmdline) || MOCK_AGENT_SCRIPT.test(p.cmdline) || /qemu-system-x86_64.*shimlab|containerd-shim-shimlab(?:-[\w-]+)?-v2/.test(p.cmdline);
}

/** This run's shimlab shim daemons, mock agents and QEMUs whose command line mentions any of the markers. */
export function shimlabProcesses(markers: string[] = [], scope: RunScope = {}): ProcInfo[] {
  const all = listProcesses();
  const inRun = runScope(scope, all);
  return all.filter((p) => p.pid !== process.pid && isShimlab(p) && (markers.length === 0 || markers.some((m) => p.cmdline.includes(m))) && inRun(p));
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


/**
 * Processes living in a cgroup shimlab's agent made under parent
 * (<parent>/<sandbox>/<container>): one instance's own, as parent is.
 */
export function containerProcesses(parent: string): ProcInfo[] {
  return listProcesses().filter((p) => inCgroupUnder(p.pid, parent));
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
 * Nothing of shimlab's left by this run: no shim daemon, mock agent or QEMU
 * of the run mentioning a marker, no mount under dirs, no container process
 * or cgroup under cgroupParent (dirs and cgroupParent are one instance's
 * own). Survivors are killed (so one failure does not cascade), then
 * reported as one Error; another run's are neither.
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
 * This run's processes of any kind (runc's shim, a Go peer, a container in
 * cgroupParent) whose command line mentions one of the markers must be gone;
 * survivors are killed, then reported.
 */
export async function expectNoProcessesMentioning(markers: string[], cgroupParent?: string): Promise<void> {
  const scope: RunScope = { cgroupParents: cgroupParent ? [cgroupParent] : [] };
  const left = await settle(() => {
    const all = listProcesses();
    const inRun = runScope(scope, all);
    return all.filter((p) => p.pid !== process.pid && (markers.some((m) => p.cmdline.includes(m)) || (cgroupParent ? inCgroupUnder(p.pid, cgroupParent) : false)) && inRun(p));
  }, 8_000);
  for (const p of left) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  if (left.length) throw new Error(`processes left: ${left.map((p) => `${p.pid} ${p.cmdline}`).join("; ")}`);
}
