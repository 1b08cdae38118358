// shimlab image build [--kernel | --debian-kernel] [--cache-dir DIR] [--no-runc] [--layout share|initramfs]
//                     [--compression lz4|gzip|none] [--json]
// shimlab image status [--cache-dir DIR] [--json]
// build makes (or finds cached) the QEMU guest image and writes the manifest a sandbox reads; a
// sandbox never builds. --kernel first builds shimlab's own guest kernel from Debian's
// linux-source (minutes, once), as a sandbox with guest_kernel = "auto" then boots. status says
// whether the image each [qemu] setting would boot is there and fresh, as a sandbox checks it.
import fs from "node:fs";
import { ensureImage, buildGuestKernel, findKernel, guestKernel, type KernelSource } from "../../guest-image";
import { cacheRoot, findImage, manifestDir, sha256Of, type ImageLayout, type ImageManifest, type KernelFlavour } from "../../hypervisor/qemu/image-manifest";
import { bool, dispatch, str, type Parsed } from "../args";
import { Progress } from "../../harness/progress";

export function run(args: string[]): Promise<number> {
  return dispatch(["image"], args, (sub, p) => (sub === "status" ? status(p) : build(p)));
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
    process.stdout.write(`kernel    ${img.kernel} (${img.kernelVersion})\ninitrd    ${img.initrd} (${(img.initrdBytes / 1e6).toFixed(1)} MB, ${img.compression})\n`);
    if (img.usrDir) process.stdout.write(`usr       ${img.usrDir} (shared read-only)\n`);
    process.stdout.write(`manifest  ${img.manifest}\n${img.built ? "built" : "cached"} in ${Date.now() - t0} ms\n`);
  }
  return 0;
}

/** The [qemu] settings whose image status reports: guest_kernel and guest_usr, runc in the guest. */
const SETTINGS: { guestKernel: "auto" | KernelFlavour; layout: ImageLayout }[] = [
  { guestKernel: "auto", layout: "share" },
  { guestKernel: "shimlab", layout: "share" },
  { guestKernel: "debian", layout: "share" },
  { guestKernel: "auto", layout: "initramfs" },
];

/** Artifacts whose content no longer matches the manifest (the sandbox's check compares sizes only). */
function corrupted(m: ImageManifest): string[] {
  const bad: string[] = [];
  for (const a of [m.kernel, m.initrd]) if (fs.existsSync(a.path) && sha256Of(a.path) !== a.sha256) bad.push(a.path);
  return bad;
}

function status(p: Parsed): number {
  const cacheDir = str(p, "cache-dir") ?? cacheRoot();
  const rows = SETTINGS.map((s) => {
    const r = findImage({ cacheDir, kernels: s.guestKernel === "auto" ? ["shimlab", "debian"] : [s.guestKernel], layout: s.layout, runc: true });
    const m = "manifest" in r ? r.manifest : null;
    const bad = m ? corrupted(m) : [];
    return { guest_kernel: s.guestKernel, guest_usr: s.layout, ok: !!m && !bad.length, manifest: m, error: "error" in r ? r.error : bad.length ? `changed since the build: ${bad.join(", ")}: run \`shimlab image build\`` : undefined };
  });
  if (bool(p, "json")) process.stdout.write(JSON.stringify({ cacheDir, manifests: manifestDir(cacheDir), settings: rows }) + "\n");
  else
    for (const r of rows) {
      const head = `guest_kernel ${r.guest_kernel.padEnd(7)} guest_usr ${r.guest_usr.padEnd(9)}`;
      process.stdout.write(r.ok ? `${head} ready: ${r.manifest!.variant.kernel} kernel ${r.manifest!.kernelVersion}, image ${r.manifest!.key}, built ${r.manifest!.builtAt}\n` : `${head} ${r.error}\n`);
    }
  // The default [qemu] table's image decides the exit status: it is what a plain sandbox boots.
  return rows[0].ok ? 0 : 1;
}
