// The guest kernel: Debian's linux-image-amd64. QEMU boots the bzImage, but
// under TCG the guest's own xz decompression costs about 3 s, so the ELF
// vmlinux inside it is extracted once and booted directly through its PVH
// entry note (CONFIG_PVH=y in Debian's config).
import fs from "node:fs";
import { spawnSync } from "node:child_process";

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

export interface KernelSource {
  /** The bzImage (/boot/vmlinuz-<version>), or with `elf` a vmlinux QEMU boots as it is. */
  path: string;
  version: string;
  /** /lib/modules/<version>; null for a kernel with everything built in (shimlab's guest kernel). */
  modulesDir: string | null;
  elf?: boolean;
}

/** The newest Debian kernel installed, with its modules; null when there is none. */
export function findKernel(bootDir = "/boot", modulesRoot = "/lib/modules"): KernelSource | null {
  let names: string[];
  try {
    names = fs.readdirSync(bootDir).filter((n) => n.startsWith("vmlinuz-"));
  } catch {
    return null;
  }
  const versions = names
    .map((n) => n.slice("vmlinuz-".length))
    .filter((v) => fs.existsSync(`${modulesRoot}/${v}/modules.dep`))
    .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const v = versions.at(-1);
  return v ? { path: `${bootDir}/vmlinuz-${v}`, version: v, modulesDir: `${modulesRoot}/${v}` } : null;
}

function indexesOf(buf: Buffer, needle: Buffer): number[] {
  const out: number[] = [];
  for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + 1)) out.push(i);
  return out;
}

/** True when an ELF file carries a Xen PVH entry note, which QEMU needs to boot it with -kernel. */
export function hasPvhNote(elf: Buffer): boolean {
  // Notes are small; a name "Xen\0" followed by type 18 (XEN_ELFNOTE_PHYS32_ENTRY) is the marker.
  const xen = Buffer.from("Xen\0");
  for (const i of indexesOf(elf, xen)) {
    if (i < 12) continue;
    const namesz = elf.readUInt32LE(i - 12);
    const type = elf.readUInt32LE(i - 4);
    if (namesz === 4 && type === 18) return true;
  }
  return false;
}

/** The uncompressed ELF kernel inside a bzImage, or null when none is found (not xz, or no PVH note). */
export function extractVmlinux(bzImage: Buffer): Buffer | null {
  for (const off of indexesOf(bzImage, XZ_MAGIC)) {
    // xz complains about the bytes after the stream; what it decoded before them is the kernel.
    const r = spawnSync("xz", ["-dc"], { input: bzImage.subarray(off), maxBuffer: 1 << 30 });
    if (r.error) throw new Error(`cannot run xz to extract the kernel: ${r.error.message} (install xz-utils)`);
    const out = r.stdout;
    if (out && out.length > 1 << 20 && out.subarray(0, 4).equals(ELF_MAGIC)) return hasPvhNote(out) ? out : null;
  }
  return null;
}
