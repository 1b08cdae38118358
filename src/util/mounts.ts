// Mount points below a directory, from this process's mountinfo, and their
// lazy removal: what a VM's shared directory leaves when its sandbox is
// reaped after a crash (binds of container root filesystems). Light enough
// for `delete`: child_process is loaded only when something is mounted.
import fs from "node:fs";

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
      (require("node:child_process") as typeof import("node:child_process")).execFileSync("umount", ["-l", m], { stdio: "ignore" });
    } catch (e) {
      warn(`umount ${m}: ${(e as Error).message}`);
    }
  }
  return mountsBelow(dir).length === 0;
}
