// Mounting what containerd's snapshotter describes onto <bundle>/rootfs, as
// runc's shim does (mount(2) through the addon; mount(8) for what needs its
// helpers), and taking it down again.
import fs from "node:fs";
import { invalidArgument } from "../errdefs";
import { native } from "../native";

export interface MountSpec {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

function run(cmd: string, args: string[]): Promise<void> {
  // loaded here: the shim's `delete` imports this file and mostly finds nothing mounted
  const { execFile } = require("node:child_process") as typeof import("node:child_process");
  return new Promise((resolve, reject) =>
    execFile(cmd, args, (err, _out, stderr) => (err ? reject(new Error(`${cmd} ${args.join(" ")}: ${(stderr || err.message).trim()}`)) : resolve())),
  );
}

const MS_RDONLY = 1,
  MS_NOSUID = 2,
  MS_NODEV = 4,
  MS_NOEXEC = 8,
  MS_SYNCHRONOUS = 16,
  MS_REMOUNT = 32,
  MS_MANDLOCK = 64,
  MS_DIRSYNC = 128,
  MS_NOATIME = 1024,
  MS_NODIRATIME = 2048,
  MS_BIND = 4096,
  MS_REC = 16384,
  MS_RELATIME = 1 << 21,
  MS_STRICTATIME = 1 << 24;
const MNT_DETACH = 2;

/** containerd's mount_linux.go table: an option that sets (or, clear, unsets) a mount flag. */
const FLAG_OPTIONS: Record<string, [clear: boolean, flag: number]> = {
  async: [true, MS_SYNCHRONOUS],
  atime: [true, MS_NOATIME],
  bind: [false, MS_BIND],
  defaults: [false, 0],
  dev: [true, MS_NODEV],
  diratime: [true, MS_NODIRATIME],
  dirsync: [false, MS_DIRSYNC],
  exec: [true, MS_NOEXEC],
  mand: [false, MS_MANDLOCK],
  noatime: [false, MS_NOATIME],
  nodev: [false, MS_NODEV],
  nodiratime: [false, MS_NODIRATIME],
  noexec: [false, MS_NOEXEC],
  nomand: [true, MS_MANDLOCK],
  norelatime: [true, MS_RELATIME],
  nostrictatime: [true, MS_STRICTATIME],
  nosuid: [false, MS_NOSUID],
  rbind: [false, MS_BIND | MS_REC],
  relatime: [false, MS_RELATIME],
  remount: [false, MS_REMOUNT],
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  strictatime: [false, MS_STRICTATIME],
  suid: [true, MS_NOSUID],
  sync: [false, MS_SYNCHRONOUS],
};

/**
 * Filesystems mount(2) takes as they come. Others (fuse.*, nfs, cifs...) may need mount(8)'s helpers
 * (/sbin/mount.<type>), and get mount(8).
 */
const DIRECT_TYPES = new Set(["overlay", "tmpfs", "bind", "none", "proc", "sysfs", "devpts", "mqueue", "ext4", "xfs", "btrfs", "squashfs", "erofs"]);

/**
 * A snapshot mount as mount(2) takes it (containerd's parseMountOptions): the flags, and the other
 * options as the filesystem's data; null when mount(8) must do it (another type, a propagation
 * option, or data longer than the page mount(2) copies).
 */
export function mountCall(m: MountSpec): { flags: number; data: string; remount: number } | null {
  if (!DIRECT_TYPES.has(m.type)) return null;
  let flags = m.type === "bind" ? MS_BIND : 0;
  const data: string[] = [];
  for (const o of m.options) {
    if (o === "") continue;
    const f = FLAG_OPTIONS[o];
    if (f) flags = f[0] ? flags & ~f[1] : flags | f[1];
    else if (/^r?(private|shared|slave|unbindable)$/.test(o)) return null;
    else data.push(o);
  }
  const text = data.join(",");
  if (Buffer.byteLength(text) >= 4096) return null;
  // A bind mount takes no other flag until it is remounted with them (mount(8) and containerd do the same).
  const other = flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
  const remount = flags & MS_BIND && other ? MS_REMOUNT | MS_BIND | other : 0;
  return { flags, data: text, remount };
}

async function mountOne(m: MountSpec, target: string): Promise<void> {
  const call = mountCall(m);
  if (call) {
    const n = native();
    let bound = false;
    try {
      n.mount(m.source, target, m.type === "bind" ? "" : m.type, call.flags, call.data);
      bound = true;
      if (call.remount) n.mount("", target, "", call.remount, "");
    } catch (e) {
      // A bind whose remount failed (read-only, say) is not left behind writable.
      if (bound) n.umount2(target, MNT_DETACH);
      throw new Error(`mount -t ${m.type}${m.options.length ? ` -o ${m.options.join(",")}` : ""} ${m.source} ${target}: ${(e as Error).message}`);
    }
    return;
  }
  const opts = m.options.filter((o) => o !== "");
  const args = ["-t", m.type];
  if (opts.length) args.push("-o", opts.join(","));
  args.push(m.source, target);
  await run("mount", args);
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
    const n = native();
    try {
      n.umount2(p, 0);
    } catch {
      try {
        n.umount2(p, MNT_DETACH);
      } catch (e) {
        throw new Error(`umount -l ${p}: ${(e as Error).message}`);
      }
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
