// A mount as mount(2) takes it, or as mount(8) must do it: containerd's parseMountOptions table,
// shared by the shim (a container's rootfs from the snapshotter, src/pod/mount.ts) and the agent (a
// guest's sandbox storages, src/mock-agent/storage.ts). mount(2) through the addon costs a syscall;
// mount(8) a fork and an exec, ~40 ms of a guest's CreateSandbox under TCG.
import { native } from "../native";

export interface MountSpec {
  type: string;
  source: string;
  target?: string;
  options: string[];
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
const DIRECT_TYPES = new Set(["overlay", "tmpfs", "bind", "none", "proc", "sysfs", "devpts", "mqueue", "ext4", "xfs", "btrfs", "squashfs", "erofs", "9p", "virtiofs"]);

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

/** Mounts m onto target through mount(2), as mountCall says; a bind whose remount failed is not left behind. */
export function mountDirect(m: MountSpec, target: string, call: { flags: number; data: string; remount: number }): void {
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
}

/** mount(8)'s arguments for m onto target, for what mount(2) alone cannot do. */
export function mountArgs(m: MountSpec, target: string): string[] {
  const opts = m.options.filter((o) => o !== "");
  const args = ["-t", m.type];
  if (opts.length) args.push("-o", opts.join(","));
  args.push(m.source, target);
  return args;
}
