// Where the host agent puts its containers' cgroups, and removing them: shared
// by the mock agent (which makes them) and the shim's `delete` (which must
// clean up after an agent that died before it could).
import fs from "node:fs";
import path from "node:path";

/** The cgroup parent of the host agent's sandboxes (SHIMLAB_CGROUP_PARENT, default /shimlab). */
export function cgroupParent(env: NodeJS.ProcessEnv = process.env): string {
  const p = env.SHIMLAB_CGROUP_PARENT || "/shimlab";
  return "/" + p.replace(/^\/+|\/+$/g, "");
}

function hierarchies(): string[] {
  try {
    return fs.existsSync("/sys/fs/cgroup/cgroup.controllers") ? ["/sys/fs/cgroup"] : fs.readdirSync("/sys/fs/cgroup").map((d) => path.join("/sys/fs/cgroup", d));
  } catch {
    return [];
  }
}

function relative(cgroupPath: string): string | null {
  const rel = cgroupPath.replace(/^\/+/, "");
  return !rel || rel.split("/").includes("..") ? null : rel;
}

/** Removes the (empty) cgroup directory in every hierarchy. */
export function removeCgroupDirs(cgroupPath: string): void {
  const rel = relative(cgroupPath);
  if (!rel) return;
  for (const r of hierarchies()) {
    try {
      fs.rmdirSync(path.join(r, rel));
    } catch {
      /* absent, or still in use */
    }
  }
}

/** Removes a cgroup and its (empty) descendants, deepest first, in every hierarchy. */
export function removeCgroupTree(cgroupPath: string): void {
  const rel = relative(cgroupPath);
  if (!rel) return;
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
    try {
      fs.rmdirSync(dir);
    } catch {
      /* still in use */
    }
  };
  for (const r of hierarchies()) walk(path.join(r, rel));
}

/** Whether the cgroup exists in any hierarchy. */
export function cgroupExists(cgroupPath: string): boolean {
  const rel = relative(cgroupPath);
  return !!rel && hierarchies().some((r) => fs.existsSync(path.join(r, rel)));
}

/**
 * Moves pid into the cgroups process `of` is in, in every hierarchy (v1's one per controller set,
 * v2's unified one), as if `of` had spawned it: a factory's warm agent then belongs to the shim
 * that took it (its service's cgroup, its accounting), not to the factory's. Best effort: a
 * hierarchy that refuses (not root, a v1 controller mounted elsewhere) is skipped. On libuv's
 * threads: a move between cgroups waits for an RCU grace period (the global
 * cgroup_threadgroup_rwsem's writer side; ~13 ms measured here, on v1's name=systemd), and a
 * caller on a pod's critical path has better to do meanwhile than sleep in that write.
 */
export function joinCgroupsOfLater(pid: number, of: number = process.pid): Promise<void> {
  return moveIntoLater(pid, cgroupDirsOf(of));
}

/** The cgroup directories pid is in, one per hierarchy; [] when it is gone. */
export function cgroupDirsOf(pid: number): string[] {
  return cgroupsOf(pid).map((c) => c.dir);
}

/** Moves pid into those of dirs it is not in already (a failed write skipped), on libuv's threads. */
export function moveIntoLater(pid: number, dirs: string[]): Promise<void> {
  // a write of a cgroup pid is in already still pays a grace period
  const mine = new Set(cgroupDirsOf(pid));
  const todo = dirs.filter((d) => !mine.has(d));
  // callbacks, not fs.promises: its module loads on first use, ~3 ms of a parked daemon's hand-over
  return new Promise((resolve) => {
    const next = (i: number): void => (i < todo.length ? fs.writeFile(path.join(todo[i], "cgroup.procs"), String(pid), () => next(i + 1)) : resolve());
    next(0);
  });
}

/** The cgroups pid is in, one per hierarchy (/proc/<pid>/cgroup): its controllers ([] for v2's unified one) and directory. */
function cgroupsOf(pid: number | "self"): { controllers: string[]; dir: string }[] {
  let lines: string[];
  try {
    lines = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n");
  } catch {
    return [];
  }
  const out: { controllers: string[]; dir: string }[] = [];
  for (const line of lines) {
    const m = /^\d+:([^:]*):(\/.*)$/.exec(line);
    if (!m) continue;
    const [, controllers, cg] = m;
    const root = controllers === "" ? "/sys/fs/cgroup" : path.join("/sys/fs/cgroup", controllers.replace(/^name=/, ""));
    out.push({ controllers: controllers ? controllers.split(",") : [], dir: path.join(root, cg) });
  }
  return out;
}

/** Background work's CPU cgroup: where it goes, and how to take it away again. */
export interface CpuCgroup {
  readonly dir: string;
  /** Moves pid (all its threads) in; best effort. */
  add(pid: number): void;
  /** Removes the directory once nothing is in it. */
  remove(): void;
}

/**
 * A child of this process's own cgroup in the CPU hierarchy that weighs what a process at nice 10
 * weighs (v1 cpu.shares 110 against the default 1024, v2 cpu.weight 11 against 100), for work
 * that must yield to everything else. Niceness alone does not do that across cgroups: the
 * scheduler shares the CPU between groups first, so a niced process alone in its group takes its
 * group's whole share from the pods in another. Not the least weight there is (2): a pool refilled
 * at that rate stays empty while pods start back to back (5 misses in 32 lifecycles, measured).
 * Null where no such cgroup can be made (not root, v2 without the cpu controller delegated).
 */
export function lowCpuCgroup(name: string): CpuCgroup | null {
  const v2 = fs.existsSync("/sys/fs/cgroup/cgroup.controllers");
  const own = cgroupsOf("self").find((c) => (v2 ? c.controllers.length === 0 : c.controllers.includes("cpu")));
  if (!own) return null;
  const dir = path.join(own.dir, name);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, v2 ? "cpu.weight" : "cpu.shares"), v2 ? "11" : "110");
  } catch {
    try {
      fs.rmdirSync(dir);
    } catch {
      /* not ours to remove either */
    }
    return null;
  }
  return {
    dir,
    add(pid) {
      try {
        fs.writeFileSync(path.join(dir, "cgroup.procs"), String(pid));
      } catch {
        /* gone, or refused: it stays where it was */
      }
    },
    remove() {
      try {
        fs.rmdirSync(dir);
      } catch {
        /* still in use (a pooled process on its way out), or gone */
      }
    },
  };
}
