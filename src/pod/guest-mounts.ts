// A container's bind mounts, made to work inside a VM as Kata makes them: a
// host source is shared into the guest (through the same share as the rootfs)
// and the mount points at the guest's copy; the sandbox's /dev/shm becomes the
// guest's own tmpfs, since host memory cannot be shared that way.
//
// In the guest a share is one filesystem, so what is mounted below a
// volume's host source would merge into it: a read-only volume would make a
// writable tmpfs below it read-only too, where runc's rbind + ro leaves it
// writable. So each host mount below an rbind source is mounted again in
// place, read-only exactly as recursively as the spec says ("rro" for all,
// "ro" for the top only).
//
// Each of those host mounts is shared on its own, by a plain bind, rather than
// carried by an rbind of the volume: the shares live in the host's mount
// namespace (QEMU serves them from there), and a bind mount shares dentries
// with its source, so an rbind's copy of a tmpfs at <volume>/tmpfs makes that
// directory a mount point in the host's namespace. Whoever owns the volume
// could then unmount its tmpfs but not remove the directory (EBUSY) while the
// container runs, where runc's copies sit in the container's own namespace
// (critest's non-recursive read-only spec does exactly that). A plain bind of
// the tmpfs itself is mounted on the share's directory, not on the volume's.
import fs from "node:fs";
import path from "node:path";
import type { OciMount, OciSpec } from "../oci/spec";
import { subMounts, type SubMount } from "./mount";
import type { ShareOptions } from "../hypervisor/types";

export type { ShareOptions };

type Mount = OciMount;

export interface MountSharer {
  shareRootfs(key: string, hostPath: string, o?: ShareOptions): Promise<string>;
}

const isBind = (m: Mount) => m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
const has = (m: Mount, o: string) => (m.options ?? []).includes(o);

/** The spec with its host binds rewritten for the guest; returns the share keys to undo. */
export async function guestMounts(
  containerId: string,
  spec: OciSpec,
  sharer: MountSharer,
  below: (dir: string) => SubMount[] = subMounts,
): Promise<{ spec: OciSpec; shares: string[] }> {
  const shares: string[] = [];
  const mounts: Mount[] = [];
  for (const [i, m] of (spec.mounts ?? []).entries()) {
    if (!isBind(m) || !m.source?.startsWith("/")) {
      mounts.push(m);
      continue;
    }
    if (m.destination === "/dev/shm") {
      mounts.push({ destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] });
      continue;
    }
    // A source that does not exist fails in the guest as it would on the host: pass it on unchanged.
    if (!fs.existsSync(m.source)) {
      mounts.push(m);
      continue;
    }
    const key = `${containerId}.m${i}`;
    const propagation = has(m, "rslave") || has(m, "slave") ? "slave" : "private";
    const source = await sharer.shareRootfs(key, m.source, { propagation });
    shares.push(key);
    mounts.push({ ...m, source });
    if (!has(m, "rbind") || !fs.statSync(m.source).isDirectory()) continue;
    const rro = has(m, "rro");
    const propagationOption = (m.options ?? []).filter((o) => /^r?(private|slave)$/.test(o));
    const real = fs.realpathSync(m.source);
    for (const [j, sub] of below(real).entries()) {
      const subKey = `${key}.s${j}`;
      const subSource = await sharer.shareRootfs(subKey, sub.path, { propagation });
      shares.push(subKey);
      mounts.push({
        destination: path.posix.join(m.destination, path.relative(real, sub.path)),
        type: "bind",
        source: subSource,
        options: ["rbind", rro || sub.readOnly ? "ro" : "rw", ...propagationOption],
      });
    }
  }
  return { spec: { ...spec, mounts }, shares };
}
