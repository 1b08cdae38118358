// A privileged container in a guest sees the guest's devices, all of them
// allowed, as a privileged container on the host sees the host's.
//
// The shim sends a privileged container's spec with the rule allowing every
// device and no device list (src/agent/spec.ts: the host's list means nothing
// here). Left like that, runc would give it only its default nodes; so the
// agent lists the guest's /dev the way containerd lists the host's for a
// privileged container (oci.HostDevices: char and block nodes, not pts, shm,
// fd or mqueue, not the console, which runc sets up itself), read at create
// time so that a device the guest gained since boot is in it.
import fs from "node:fs";
import path from "node:path";
import { allowsAllDevices } from "../oci/devices";
import type { OciLinux, OciSpec } from "../oci/spec";

export type OciDevice = NonNullable<OciLinux["devices"]>[number];

/** containerd's HostDevices skips these directories: mounts of their own, or not devices. */
const SKIP_DIRS = new Set(["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]);

/** The spec asks for every device (containerd's privileged container, `ctr run --privileged`). */
export function allowsEveryDevice(spec: OciSpec): boolean {
  return (spec.linux?.resources?.devices ?? []).some(allowsAllDevices);
}

/** Linux's dev_t layout (MAJOR/MINOR of the kernel's 32-bit split, as glibc's gnu_dev_major). */
function majorMinor(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/** Every char and block device node under dir, as an OCI device at the same path in the container. */
export function listDevices(dir = "/dev", containerDir = "/dev"): OciDevice[] {
  const out: OciDevice[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    const cp = path.posix.join(containerDir, e.name);
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) out.push(...listDevices(p, cp));
      continue;
    }
    if (e.name === "console" || !(e.isCharacterDevice() || e.isBlockDevice())) continue;
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(p, { bigint: true });
    } catch {
      continue; // gone since readdir
    }
    out.push({
      path: cp,
      type: st.isCharacterDevice() ? "c" : "b",
      ...majorMinor(st.rdev),
      fileMode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
    });
  }
  return out;
}

/** A privileged container's spec with the guest's devices where the host's would be. */
export function withGuestDevices(spec: OciSpec, devices: OciDevice[]): OciSpec {
  return { ...spec, linux: { ...spec.linux, devices } };
}
