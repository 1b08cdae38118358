// shimlab image build [--kernel | --debian-kernel] [--cache-dir DIR] [--no-runc] [--layout share|initramfs]
//                     [--compression lz4|gzip|none] [--json]
// Builds (or finds cached) the QEMU guest image and prints where it is. --kernel first builds
// shimlab's own guest kernel from Debian's linux-source (minutes, once), as a sandbox with
// guest_kernel = "auto" then boots.
import { ensureImage, cacheRoot, type ImageLayout } from "../../hypervisor/qemu/image";
import { buildGuestKernel } from "../../hypervisor/qemu/guest-kernel";
import { findKernel, type KernelSource } from "../../hypervisor/qemu/kernel";
import { guestKernel } from "../../hypervisor/qemu";

const USAGE = `usage: shimlab image build [--kernel | --debian-kernel] [--cache-dir DIR] [--no-runc] [--layout share|initramfs]
                          [--compression lz4|gzip|none] [--json]

  --kernel          build shimlab's guest kernel first (from /usr/src/linux-source-*.tar.xz: apt-get install
                    linux-source-6.1 bc bison flex libelf-dev; a few minutes, once), then the image for it
  --debian-kernel   the image for Debian's kernel (linux-image-amd64) even when shimlab's is built
  --no-runc         no runc in the guest (for [qemu] guest_runtime = "host")
  --layout          /usr on a read-only 9p share (default) or inside the initramfs
`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "build") {
    process.stderr.write(USAGE);
    return 2;
  }
  let cacheDir = cacheRoot();
  let runc = true;
  let json = false;
  let kernelChoice: "auto" | "build" | "debian" = "auto";
  let layout: ImageLayout = "share";
  let compression: "lz4" | "gzip" | "none" | undefined;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--cache-dir" && rest[i + 1]) cacheDir = rest[++i];
    else if (a === "--no-runc") runc = false;
    else if (a === "--json") json = true;
    else if (a === "--kernel") kernelChoice = "build";
    else if (a === "--debian-kernel") kernelChoice = "debian";
    else if (a === "--layout" && /^(share|initramfs)$/.test(rest[i + 1] ?? "")) layout = rest[++i] as ImageLayout;
    else if (a === "--compression" && /^(lz4|gzip|none)$/.test(rest[i + 1] ?? "")) compression = rest[++i] as typeof compression;
    else {
      process.stderr.write(`shimlab image build: unknown or incomplete argument ${a}\n\n${USAGE}`);
      return 2;
    }
  }
  const t0 = Date.now();
  const say = (what: string) => (m: string) => process.stderr.write(`${what}: ${m}\n`);
  let kernel: KernelSource;
  if (kernelChoice === "build") kernel = (await buildGuestKernel({ cacheDir, onProgress: say("kernel") })).kernel;
  else if (kernelChoice === "debian") {
    const k = findKernel();
    if (!k) throw new Error("no Debian kernel: install linux-image-amd64");
    kernel = k;
  } else kernel = guestKernel("auto", cacheDir);
  const img = await ensureImage({ cacheDir, runc, compression, layout, kernel, onProgress: say("image") });
  if (json) process.stdout.write(JSON.stringify(img) + "\n");
  else {
    process.stdout.write(`kernel  ${img.kernel} (${img.kernelVersion})\ninitrd  ${img.initrd} (${(img.initrdBytes / 1e6).toFixed(1)} MB, ${img.compression})\n`);
    if (img.usrDir) process.stdout.write(`usr     ${img.usrDir} (shared read-only)\n`);
    process.stdout.write(`${img.built ? "built" : "cached"} in ${Date.now() - t0} ms\n`);
  }
  return 0;
}
