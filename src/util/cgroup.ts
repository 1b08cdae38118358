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
