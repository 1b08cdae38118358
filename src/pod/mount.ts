// Mounting what containerd's snapshotter describes onto <bundle>/rootfs, as
// runc's shim does (mount(2) through the addon; mount(8) for what needs its
// helpers), and taking it down again.
import fs from "node:fs";
import { invalidArgument } from "../errdefs";
import { mountArgs, mountCall, mountDirect, type MountSpec } from "../util/mount-call";
import { unmountOrDetach } from "../util/mounts";

export { mountCall, type MountSpec } from "../util/mount-call";

function run(cmd: string, args: string[]): Promise<void> {
  // loaded here: the shim's `delete` imports this file and mostly finds nothing mounted
  const { execFile } = require("node:child_process") as typeof import("node:child_process");
  return new Promise((resolve, reject) =>
    execFile(cmd, args, (err, _out, stderr) => (err ? reject(new Error(`${cmd} ${args.join(" ")}: ${(stderr || err.message).trim()}`)) : resolve())),
  );
}

async function mountOne(m: MountSpec, target: string): Promise<void> {
  const call = mountCall(m);
  if (call) return mountDirect(m, target, call);
  await run("mount", mountArgs(m, target));
}

/** Mounts each in order onto target (several mounts stack, as containerd's mount.All does). */
export async function mountAll(mounts: MountSpec[], target: string): Promise<void> {
  fs.mkdirSync(target, { recursive: true });
  for (const m of mounts) {
    if (!m.type) throw invalidArgument(`rootfs mount of ${JSON.stringify(m.source)} has no type`);
    if (/[\n\0]/.test(m.source) || m.options.some((o) => /[\n\0]/.test(o))) throw invalidArgument("rootfs mount has control characters");
    await mountOne(m, target);
  }
}

export function isMountPoint(p: string): boolean {
  try {
    const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8");
    const esc = p.replace(/ /g, "\\040");
    return mounts.split("\n").some((l) => l.split(" ")[4] === esc);
  } catch {
    return false;
  }
}

/** Unmounts everything stacked on p; lazily when busy, so delete never fails on a lingering user. */
export async function unmountAll(p: string): Promise<void> {
  for (let i = 0; i < 16 && isMountPoint(p); i++) {
    try {
      unmountOrDetach(p);
    } catch (e) {
      throw new Error(`umount -l ${p}: ${(e as Error).message}`);
    }
  }
}

export { mountsBelow } from "../util/mounts";

export interface SubMount {
  path: string;
  readOnly: boolean;
}

/**
 * The mounts strictly below dir, outermost first, with whether each is
 * read-only (mountinfo's per-mount options): what an rbind of dir carries.
 */
export function subMounts(dir: string, mountinfo?: string): SubMount[] {
  let text = mountinfo;
  if (text === undefined) {
    try {
      text = fs.readFileSync("/proc/self/mountinfo", "utf8");
    } catch {
      return [];
    }
  }
  const seen = new Map<string, SubMount>();
  for (const l of text.split("\n")) {
    const f = l.split(" ");
    const p = (f[4] ?? "").replace(/\\040/g, " ");
    // A later line for the same point is a mount stacked on it: the top one is what shows.
    if (p.startsWith(dir + "/")) seen.set(p, { path: p, readOnly: (f[5] ?? "").split(",").includes("ro") });
  }
  return [...seen.values()].sort((a, b) => a.path.split("/").length - b.path.split("/").length || a.path.localeCompare(b.path));
}
