// The two images CRI needs, built locally from Debian's busybox-static (no
// registry): a pause image for the sandbox container and a busybox image for
// the app containers, imported into containerd's k8s.io namespace.
import fs from "node:fs";
import path from "node:path";
import { buildOciArchive } from "../oci-image";
import { buildBusyboxRootfs, findBusybox } from "../rootfs";
import type { Containerd } from "../containerd";

export const PAUSE_IMAGE = "shimlab.local/pause:1.0";
export const BUSYBOX_IMAGE = "shimlab.local/busybox:1.0";
/** The namespace the CRI plugin keeps its images and containers in. */
export const CRI_NAMESPACE = "k8s.io";

/**
 * What the pause container does: sleep until told to stop, and then exit 0
 * (busybox's sleep as pid 1 would ignore SIGTERM, the kernel gives pid 1 no
 * default actions).
 */
const PAUSE_SCRIPT = "#!/bin/sh\ntrap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done\n";

/** A rootfs with nothing but busybox, sh, sleep and /pause. */
export function buildPauseRootfs(dir: string, busybox = findBusybox()): string {
  if (!busybox) throw new Error("busybox (static) not found: apt-get install busybox-static");
  for (const d of ["bin", "dev", "proc", "sys", "etc"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync(busybox, path.join(dir, "bin", "busybox"));
  fs.chmodSync(path.join(dir, "bin", "busybox"), 0o755);
  for (const a of ["sh", "sleep"]) if (!fs.existsSync(path.join(dir, "bin", a))) fs.symlinkSync("busybox", path.join(dir, "bin", a));
  fs.writeFileSync(path.join(dir, "pause"), PAUSE_SCRIPT, { mode: 0o755 });
  return dir;
}

export interface LocalImages {
  pause: string;
  busybox: string;
}

/** Builds both archives under dir (reusing a busybox rootfs if given). */
export function buildCriImages(dir: string, busyboxRootfs?: string): { pause: string; busybox: string } {
  fs.mkdirSync(dir, { recursive: true });
  const pauseRoot = buildPauseRootfs(fs.mkdtempSync(path.join(dir, "pause-root-")));
  const pause = path.join(dir, "pause.tar");
  buildOciArchive(pauseRoot, pause, { name: PAUSE_IMAGE, entrypoint: ["/pause"], cmd: [] });
  fs.rmSync(pauseRoot, { recursive: true, force: true });
  const bbRoot = busyboxRootfs ?? buildBusyboxRootfs(fs.mkdtempSync(path.join(dir, "busybox-root-")));
  const busybox = path.join(dir, "busybox.tar");
  buildOciArchive(bbRoot, busybox, { name: BUSYBOX_IMAGE, cmd: ["/bin/sh"] });
  if (!busyboxRootfs) fs.rmSync(bbRoot, { recursive: true, force: true });
  return { pause, busybox };
}

/** `ctr -n k8s.io images import` of both images into this containerd (unpacked for overlayfs). */
export async function importCriImages(ctd: Containerd, archives: { pause: string; busybox: string }): Promise<LocalImages> {
  for (const a of [archives.pause, archives.busybox]) {
    await ctd.ctr(["images", "import", a], { namespace: CRI_NAMESPACE, check: true, timeoutMs: 120_000 });
  }
  return { pause: PAUSE_IMAGE, busybox: BUSYBOX_IMAGE };
}
