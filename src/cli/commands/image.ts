// shimlab image build [--kernel | --debian-kernel] [--cache-dir DIR] [--no-runc] [--layout share|initramfs]
//                     [--compression lz4|gzip|none] [--json]
// Builds (or finds cached) the QEMU guest image and prints where it is. --kernel first builds
// shimlab's own guest kernel from Debian's linux-source (minutes, once), as a sandbox with
// guest_kernel = "auto" then boots.
import { ensureImage, cacheRoot, type ImageLayout } from "../../hypervisor/qemu/image";
import { buildGuestKernel } from "../../hypervisor/qemu/guest-kernel";
import { findKernel, type KernelSource } from "../../hypervisor/qemu/kernel";
import { guestKernel } from "../../hypervisor/qemu";
import { bool, dispatch, str, type Parsed } from "../args";
import { Progress } from "../../harness/progress";

export function run(args: string[]): Promise<number> {
  return dispatch(["image"], args, (_build, p) => build(p));
}

async function build(p: Parsed): Promise<number> {
  const cacheDir = str(p, "cache-dir") ?? cacheRoot();
  const runc = !bool(p, "no-runc");
  const json = bool(p, "json");
  const kernelChoice: "auto" | "build" | "debian" = bool(p, "kernel") ? "build" : bool(p, "debian-kernel") ? "debian" : "auto";
  const layout = (str(p, "layout") ?? "share") as ImageLayout;
  const compression = str(p, "compression") as "lz4" | "gzip" | "none" | undefined;
  const t0 = Date.now();
  // Steps as lines, counts as a status (one rewritten line on a terminal, a line per 30 s in a log),
  // and a heartbeat through the quiet minutes (unpacking the kernel source, the snapshot VM).
  const say = (p: Progress) => (m: string, kind?: "status") => (kind === "status" ? p.status(m.trim()) : p.line(m));
  let kernel: KernelSource;
  if (kernelChoice === "build") {
    const kp = new Progress("kernel", { heartbeatMs: 30_000 });
    try {
      kernel = (await buildGuestKernel({ cacheDir, onProgress: say(kp) })).kernel;
    } finally {
      kp.done();
    }
  } else if (kernelChoice === "debian") {
    const k = findKernel();
    if (!k) throw new Error("no Debian kernel: install linux-image-amd64");
    kernel = k;
  } else kernel = guestKernel("auto", cacheDir);
  const ip = new Progress("image", { heartbeatMs: 30_000 });
  let img;
  try {
    img = await ensureImage({ cacheDir, runc, compression, layout, kernel, onProgress: say(ip) });
  } finally {
    ip.done();
  }
  if (json) process.stdout.write(JSON.stringify(img) + "\n");
  else {
    process.stdout.write(`kernel  ${img.kernel} (${img.kernelVersion})\ninitrd  ${img.initrd} (${(img.initrdBytes / 1e6).toFixed(1)} MB, ${img.compression})\n`);
    if (img.usrDir) process.stdout.write(`usr     ${img.usrDir} (shared read-only)\n`);
    process.stdout.write(`${img.built ? "built" : "cached"} in ${Date.now() - t0} ms\n`);
  }
  return 0;
}
