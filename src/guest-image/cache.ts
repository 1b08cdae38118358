// The image cache (<cache>/images/<key>, <cache>/kernels): what a build
// shares with earlier ones, and what it clears away after itself.
import fs from "node:fs";
import path from "node:path";
import { manifestDir, sha256Of, type ImageManifest } from "../hypervisor/qemu/image-manifest";
import { extractVmlinux, type KernelSource } from "./kernel";
import { listProcesses } from "../util/proc";

/** Images kept in the cache: each change to the agent's code makes a new one. */
export const KEEP_IMAGES = 6;

/** The uncompressed kernel, extracted once per bzImage (by content) and shared by every image built on it. */
export function extractedKernel(cacheDir: string, kernel: KernelSource, say: (m: string) => void): string {
  if (kernel.elf) return kernel.path;
  const dir = path.join(cacheDir, "kernels", sha256Of(kernel.path).slice(0, 20));
  for (const name of [`vmlinux-${kernel.version}`, `vmlinuz-${kernel.version}`]) if (fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  say(`extracting the uncompressed kernel from ${kernel.path}`);
  const vmlinux = extractVmlinux(fs.readFileSync(kernel.path));
  let name: string;
  let data: Buffer;
  if (vmlinux) {
    name = `vmlinux-${kernel.version}`;
    data = vmlinux;
  } else {
    say("no PVH-bootable ELF inside the bzImage: booting the bzImage (slower under TCG)");
    name = `vmlinuz-${kernel.version}`;
    data = fs.readFileSync(kernel.path);
  }
  const tmp = path.join(dir, `.${name}.${process.pid}`);
  fs.writeFileSync(tmp, data, { mode: 0o644 });
  fs.renameSync(tmp, path.join(dir, name));
  return path.join(dir, name);
}

/** Build directories a crashed builder left (".<key>-XXXXXX"), once they are an hour old. */
export function removeStaleBuilds(imagesDir: string): void {
  const old = Date.now() - 3600_000;
  for (const n of fs.readdirSync(imagesDir)) {
    const p = path.join(imagesDir, n);
    try {
      if (n.startsWith(".") && n !== ".fingerprints" && fs.statSync(p).mtimeMs < old) fs.rmSync(p, { recursive: true, force: true });
    } catch {
      /* raced with its owner */
    }
  }
}

/** Image directories a running QEMU shares /usr from (its command line names them). */
function imagesInUse(imagesDir: string): Set<string> {
  const used = new Set<string>();
  const marker = `path=${imagesDir}/`;
  for (const { cmdline } of listProcesses())
    for (let i = cmdline.indexOf(marker); i >= 0; i = cmdline.indexOf(marker, i + 1)) used.add(cmdline.slice(i + marker.length).split(/[/, ]/)[0]);
  return used;
}

/**
 * Keeps the newest images (and the one just made). QEMU holds the kernel and initramfs it booted
 * in memory, but reads /usr from the image as the guest runs: an image a QEMU shares is kept.
 */
export function pruneImages(imagesDir: string, keep: number, current: string): void {
  const inUse = imagesInUse(imagesDir);
  const imgs = fs
    .readdirSync(imagesDir)
    .filter((n) => !n.startsWith(".") && n !== current && !inUse.has(n))
    .map((n) => ({ n, t: fs.statSync(path.join(imagesDir, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { n } of imgs.slice(Math.max(0, keep - 1))) fs.rmSync(path.join(imagesDir, n), { recursive: true, force: true });
}

/**
 * Manifests of pruned images, once a day old: until then one still tells a sandbox what it was
 * built from, so its error says what changed rather than that nothing was ever built.
 */
export function pruneManifests(cacheDir: string): void {
  const dir = manifestDir(cacheDir);
  const old = Date.now() - 86_400_000;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = path.join(dir, n);
    try {
      const m = JSON.parse(fs.readFileSync(p, "utf8")) as ImageManifest;
      if (!fs.existsSync(m.initrd.path) && fs.statSync(p).mtimeMs < old) fs.rmSync(p, { force: true });
    } catch {
      /* a manifest being written, or not one: left alone */
    }
  }
}
