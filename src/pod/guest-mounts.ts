// A container's bind mounts, made to work inside a VM as Kata makes them: a
// host source is shared into the guest (through the same share as the rootfs)
// and the mount points at the guest's copy; the sandbox's /dev/shm becomes the
// guest's own tmpfs, since host memory cannot be shared that way.
import fs from "node:fs";
import type { OciMount, OciSpec } from "../oci/spec";

type Mount = OciMount;

export interface MountSharer {
  shareRootfs(key: string, hostPath: string): Promise<string>;
}

const isBind = (m: Mount) => m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");

/** The spec with its host binds rewritten for the guest; returns the share keys to undo. */
export async function guestMounts(containerId: string, spec: OciSpec, sharer: MountSharer): Promise<{ spec: OciSpec; shares: string[] }> {
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
    const source = await sharer.shareRootfs(key, m.source);
    shares.push(key);
    mounts.push({ ...m, source });
  }
  return { spec: { ...spec, mounts }, shares };
}
