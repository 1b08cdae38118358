// Mount points below a directory, from this process's mountinfo, and their
// removal: what a VM's shared directory holds (binds of container root
// filesystems and volumes), taken down as a share ends or when its sandbox is
// reaped after a crash; and the binds themselves. mount(2) through the addon,
// never mount(8): a VM pod's container shares 3-5 paths, and a mount(8) exec
// for each bind and each propagation change was ~45 ms of a container's
// create on one CPU. Light enough for `delete`: the addon is loaded only when
// something is mounted.
import fs from "node:fs";
import { native } from "../native";

const MS_BIND = 4096;
const MS_REC = 16384;
const MS_PRIVATE = 1 << 18;
const MS_SLAVE = 1 << 19;
const MNT_DETACH = 2;

/**
 * `mount --bind source target`, then, with a propagation, `mount --make-r<propagation> target`:
 * a bind of a shared mount joins its peer group, and host mounts made below the source later
 * would reach the bind whatever was asked. A bind whose propagation cannot be set is not left.
 */
export function bindMount(source: string, target: string, propagation?: "private" | "slave"): void {
  const n = native();
  try {
    n.mount(source, target, "", MS_BIND, "");
  } catch (e) {
    throw new Error(`mount --bind ${source} ${target}: ${(e as Error).message}`);
  }
  if (!propagation) return;
  try {
    n.mount("", target, "", MS_REC | (propagation === "slave" ? MS_SLAVE : MS_PRIVATE), "");
  } catch (e) {
    n.umount2(target, MNT_DETACH);
    throw new Error(`mount --make-r${propagation} ${target}: ${(e as Error).message}`);
  }
}

/**
 * `umount -R target`: target and everything mounted below it, deepest first; what is busy goes
 * lazily (`umount -l`). Throws only when something is still mounted there after that.
 */
export function unmountTree(target: string): void {
  let failed = "";
  for (const m of mountsBelow(target).sort((a, b) => b.length - a.length)) {
    try {
      unmountOrDetach(m);
    } catch (e) {
      failed ||= `umount ${m}: ${(e as Error).message}`;
    }
  }
  if (failed && mountsBelow(target).length) throw new Error(failed);
}

/** umount(2) of the mount on top of p; when that is busy, its lazy form (`umount -l`), whose failure is thrown. */
export function unmountOrDetach(p: string): void {
  const n = native();
  try {
    n.umount2(p, 0);
  } catch {
    n.umount2(p, MNT_DETACH);
  }
}

/** Mount points at or below dir, as mountinfo lists them (octal escapes undone for spaces). */
export function mountsBelow(dir: string): string[] {
  try {
    return fs
      .readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((l) => (l.split(" ")[4] ?? "").replace(/\\040/g, " "))
      .filter((m) => m && (m === dir || m.startsWith(dir + "/")));
  } catch {
    return [];
  }
}

/** Lazily unmounts everything at or below dir, deepest first; true when nothing is left mounted there. */
export function unmountBelow(dir: string, warn: (m: string) => void): boolean {
  for (const m of mountsBelow(dir).sort((a, b) => b.length - a.length)) {
    try {
      native().umount2(m, MNT_DETACH);
    } catch (e) {
      warn(`umount ${m}: ${(e as Error).message}`);
    }
  }
  return mountsBelow(dir).length === 0;
}
