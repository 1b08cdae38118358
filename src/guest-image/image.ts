// The guest image: an uncompressed kernel, an initramfs holding busybox, the
// shared libraries and (for Debian's kernel) the virtio/9p modules, and a /usr
// tree with node, runc and the mock agent's bundle, its startup snapshot and
// the native addon. /usr is shared read-only into the guest over 9p (layout
// "share"): under TCG the kernel unpacks every initramfs byte before /init,
// while a share pages in only what node touches. Layout "initramfs" puts /usr
// in the initramfs too, for a guest without the share. Everything is cached
// under a key made of the content of every input, so a rebuild happens only
// when something that goes into the image changed; each build (or cache hit)
// then writes the manifest a sandbox reads (manifest.ts).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { addonPath } from "../native";
import { which } from "../util/which";
import { guestInit, GUEST_AGENT_SNAPSHOT } from "../hypervisor/qemu/guest-init";
import { cacheRoot, IMAGE_FORMAT, sha256Of, shimlabDist, type ArtifactRecord, type ImageLayout, type ImageVariant } from "../hypervisor/qemu/image-manifest";
import { S_IFCHR, S_IFDIR, S_IFREG, type CpioEntry } from "./cpio";
import { findKernel, type KernelSource } from "./kernel";
import { findGuestConfig, findGuestKernel } from "./guest-kernel";
import { collectInputs, contentOf, sharedLibs, type FileInput } from "./inputs";
import { compressFiles, cpioOf, dirsOf, writeInitramfs } from "./initramfs";
import { snapshotInVm } from "./snapshot";
import { extractedKernel, KEEP_IMAGES, pruneImages, pruneManifests, removeStaleBuilds } from "./cache";
import { writeManifest } from "./manifest";

export interface ImageOptions {
  cacheDir?: string;
  kernel?: KernelSource;
  /** The node binary copied into the guest (default: the one running). */
  node?: string;
  busybox?: string;
  /** Compiled JavaScript (the repo's dist/). */
  distDir?: string;
  nativeAddon?: string;
  /** Also put runc (and its libraries) in the guest, for the agent's runc runtime. */
  runc?: boolean;
  compression?: "lz4" | "gzip" | "none";
  /** Where /usr goes (default "share"). */
  layout?: ImageLayout;
  /** QEMU, to build the agent's startup snapshot in a VM; null: no snapshot (default: found on PATH). */
  qemuPath?: string | null;
  /** Each step; the initramfs's percentage comes as a "status" (the CLI rewrites it in place on a terminal). */
  onProgress?: (msg: string, kind?: "status") => void;
}

/** What <cache>/images/<key>/image.json holds: the image, and the content it was made from. */
export interface ImageRecord {
  key: string;
  dir: string;
  /** The ELF vmlinux (PVH boot), or the bzImage when no ELF could be extracted. */
  kernel: string;
  initrd: string;
  /** The /usr tree QEMU shares read-only (layout "share"); null when /usr is in the initramfs. */
  usrDir: string | null;
  layout: ImageLayout;
  kernelVersion: string;
  initrdBytes: number;
  compression: string;
  runc: boolean;
  modules: string[];
  /** sha256 of each input by its place in the guest ("kernel" for the kernel). */
  inputs: Record<string, string>;
  kernelArtifact: ArtifactRecord;
  initrdSha256: string;
  usrTree: { files: number; bytes: number; sha256: string } | null;
  builtAt: string;
}

export interface GuestImage extends ImageRecord {
  /** The manifest a sandbox reads for this image. */
  manifest: string;
  variant: ImageVariant;
  /** False when it came from the cache. */
  built: boolean;
  buildMs: number;
}

/** The /usr tree's identity: every file's place, mode and content. */
function treeDigest(root: string): { files: number; bytes: number; sha256: string } {
  const h = crypto.createHash("sha256");
  let files = 0;
  let bytes = 0;
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = path.join(rel, n);
      const st = fs.lstatSync(path.join(root, r));
      if (st.isDirectory()) walk(r);
      else {
        files++;
        bytes += st.size;
        h.update(`${r} ${(st.mode & 0o7777).toString(8)} ${sha256Of(path.join(root, r))}\n`);
      }
    }
  };
  walk("");
  return { files, bytes, sha256: h.digest("hex") };
}

/** Returns the cached image for these inputs, building it first when there is none, and writes its manifest. */
export async function ensureImage(o: ImageOptions = {}): Promise<GuestImage> {
  const t0 = Date.now();
  const say = o.onProgress ?? (() => {});
  const cacheDir = o.cacheDir ?? cacheRoot();
  // As a sandbox with guest_kernel = "auto" prefers: shimlab's guest kernel once built, else Debian's.
  const kernel = o.kernel ?? findGuestKernel(cacheDir) ?? findKernel();
  if (!kernel) throw new Error("no guest kernel: install linux-image-amd64 (a /boot/vmlinuz-* with /lib/modules/<version>/modules.dep), or build shimlab's with `shimlab image build --kernel`");
  const busybox = o.busybox ?? ["/bin/busybox", "/usr/bin/busybox"].find((p) => fs.existsSync(p));
  if (!busybox) throw new Error("no busybox: install busybox-static");
  if (sharedLibs(busybox).length && !o.busybox) say(`note: ${busybox} is dynamically linked; its libraries go into the image too`);
  const node = o.node ?? process.execPath;
  const distDir = o.distDir ?? shimlabDist();
  const nativeAddon = o.nativeAddon ?? addonPath();
  if (!fs.existsSync(nativeAddon)) throw new Error(`native addon ${nativeAddon} is missing: run "npm run build"`);
  const runc = o.runc ? which("runc") : null;
  if (o.runc && !runc) throw new Error('runc is not installed on the host, so it cannot go into the guest image (install runc, or use [qemu] guest_runtime = "host")');
  // crun rides along when the host has it: guest_runtime = "crun" takes it from the same image.
  const crun = runc ? which("crun") : null;
  const compression = o.compression ?? (which("lz4") ? "lz4" : "gzip");
  const stripBin = which("strip");
  const qemu = o.qemuPath === undefined ? which("qemu-system-x86_64") : o.qemuPath;
  const layout = o.layout ?? "share";
  const variant: ImageVariant = { kernel: kernel.modulesDir ? "debian" : "shimlab", layout, runc: !!runc };
  // shimlab's kernel is chosen by its config fragment: a changed fragment makes this image stale.
  const fragment = variant.kernel === "shimlab" ? findGuestConfig() : null;
  const kernelInputs: FileInput[] = [{ dest: "kernel", src: kernel.path }, ...(fragment ? [{ dest: "kernel-config", src: fragment }] : [])];

  const { files, modules } = collectInputs({ node, busybox, distDir, nativeAddon, kernel, runc, crun });
  const init = guestInit(modules, { usrShare: layout === "share" });
  const head = `format ${IMAGE_FORMAT}\nlayout ${layout}\ncompression ${compression}\nstrip ${!!stripBin}\nsnapshot ${!!qemu}\n`;

  // Hashing 110 MB costs 0.1-0.4 s: a fingerprint of the inputs' stat data (path, size, mtime,
  // inode, as make and ccache trust) remembers the content key it last had.
  const fp = crypto.createHash("sha256");
  fp.update(`${head}${init}`);
  for (const f of [{ dest: "kernel", src: kernel.path, mode: 0 }, ...files]) {
    const st = fs.statSync(f.src);
    fp.update(`\n${f.dest} ${f.mode ?? 0o644} ${f.src} ${st.size} ${st.mtimeMs} ${st.ino}`);
  }
  const fpFile = path.join(cacheDir, "images", ".fingerprints", fp.digest("hex").slice(0, 32));
  let key = "";
  try {
    key = fs.readFileSync(fpFile, "utf8").trim();
  } catch {
    /* not seen: hash the content */
  }
  let inputs: Record<string, string> | null = null;
  const hashInputs = (): Record<string, string> => {
    say(`hashing ${files.length + 1} inputs`);
    const shas: Record<string, string> = { kernel: sha256Of(kernel.path) };
    for (const f of files) shas[f.dest] = sha256Of(f.src);
    return shas;
  };
  if (!/^[0-9a-f]{20}$/.test(key) || !fs.existsSync(path.join(cacheDir, "images", key, "image.json"))) {
    inputs = hashInputs();
    const h = crypto.createHash("sha256").update(head).update(init);
    h.update(`\nkernel ${inputs.kernel}`);
    for (const f of files) h.update(`\n${f.dest} ${f.mode ?? 0o644} ${inputs[f.dest]}`);
    key = h.digest("hex").slice(0, 20);
  }
  const rememberKey = () => {
    try {
      fs.mkdirSync(path.dirname(fpFile), { recursive: true });
      fs.writeFileSync(`${fpFile}.${process.pid}`, key);
      fs.renameSync(`${fpFile}.${process.pid}`, fpFile);
    } catch {
      /* unremembered: hashed again next time */
    }
  };
  const finish = (img: ImageRecord, built: boolean): GuestImage => {
    const manifest = writeManifest(cacheDir, img, variant, files, kernelInputs);
    return { ...img, manifest, variant, built, buildMs: Date.now() - t0 };
  };
  const dir = path.join(cacheDir, "images", key);
  const recordFile = path.join(dir, "image.json");
  if (fs.existsSync(recordFile)) {
    const img = JSON.parse(fs.readFileSync(recordFile, "utf8")) as ImageRecord;
    if (fs.existsSync(img.kernel) && fs.existsSync(img.initrd) && (!img.usrDir || fs.existsSync(img.usrDir))) {
      say(`cached image ${key}`);
      rememberKey();
      try {
        const now = new Date();
        fs.utimesSync(dir, now, now); // recently used: kept by pruning
      } catch {
        /* read-only cache: fine */
      }
      return finish(img, false);
    }
  }
  // A fingerprint hit whose files were pruned: rebuilt under the same key, its inputs hashed for the manifest.
  inputs ??= hashInputs();

  fs.mkdirSync(path.join(cacheDir, "images"), { recursive: true, mode: 0o755 });
  removeStaleBuilds(path.join(cacheDir, "images"));
  const tmp = fs.mkdtempSync(path.join(cacheDir, "images", `.${key}-`));
  try {
    const kernelPath = extractedKernel(cacheDir, kernel, say);
    const onShare = (f: FileInput) => layout === "share" && f.dest.startsWith("usr/");
    const usrFiles = files.filter(onShare);
    const initFiles = files.filter((f) => !onShare(f));
    const usrTmp = path.join(tmp, "usr");
    if (usrFiles.length) {
      const bytes = usrFiles.reduce((n, f) => n + fs.statSync(f.src).size, 0);
      say(`copying ${usrFiles.length} files (${(bytes / 1e6).toFixed(1)} MB) into /usr, shared read-only into the guest`);
      for (const f of usrFiles) {
        const out = path.join(tmp, f.dest);
        fs.mkdirSync(path.dirname(out), { recursive: true, mode: 0o755 });
        fs.writeFileSync(out, contentOf(f, stripBin, tmp), { mode: f.mode ?? 0o644 });
      }
    }
    const total = initFiles.reduce((n, f) => n + fs.statSync(f.src).size, 0);
    say(`packing ${initFiles.length} files (${(total / 1e6).toFixed(1)} MB) into the initramfs, ${compression}`);
    let lastPct = -1;
    const dests = initFiles.map((f) => f.dest);
    async function* entries(): AsyncGenerator<CpioEntry> {
      for (const d of ["dev", "proc", "sys", "tmp", "run", "root", "etc", "usr", "usr/sbin", "sbin", ...dirsOf(dests)].filter((d, i, a) => a.indexOf(d) === i))
        yield { name: d, mode: S_IFDIR | 0o755 };
      yield { name: "dev/console", mode: S_IFCHR | 0o600, rdev: [5, 1] };
      yield { name: "dev/null", mode: S_IFCHR | 0o666, rdev: [1, 3] };
      yield { name: "init", mode: S_IFREG | 0o755, data: Buffer.from(init) };
      yield { name: "etc/shimlab-image", mode: S_IFREG | 0o644, data: Buffer.from(`${key}\n`) };
      for (const f of initFiles) yield { name: f.dest, mode: S_IFREG | (f.mode ?? 0o644), data: contentOf(f, stripBin, tmp) };
    }
    const initrdName = `initrd.cpio${compression === "lz4" ? ".lz4" : compression === "gzip" ? ".gz" : ""}`;
    const raw = path.join(tmp, ".initrd.cpio");
    await writeInitramfs(raw, entries, "none", (n) => {
      const pct = Math.min(100, Math.floor((n / total) * 100 / 10) * 10);
      if (pct !== lastPct) {
        lastPct = pct;
        say(`  ${pct}%`, "status");
      }
    });
    const parts = [raw];
    if (qemu) {
      say("building the agent's startup snapshot in a VM (once per image)");
      const blob = await snapshotInVm(qemu, kernelPath, raw, usrFiles.length ? usrTmp : null, tmp);
      if (blob && usrFiles.length) fs.writeFileSync(path.join(tmp, GUEST_AGENT_SNAPSHOT.slice(1)), blob, { mode: 0o644 });
      else if (blob) {
        fs.writeFileSync(path.join(tmp, ".snapshot.cpio"), await cpioOf([{ name: GUEST_AGENT_SNAPSHOT.slice(1), mode: S_IFREG | 0o644, data: blob }]));
        parts.push(path.join(tmp, ".snapshot.cpio"));
      } else say("no startup snapshot (the build VM did not make one): the guest's agent starts from its bundle");
    }
    await compressFiles(parts, path.join(tmp, initrdName), compression);
    for (const p of parts) fs.rmSync(p, { force: true });
    const initrdBytes = fs.statSync(path.join(tmp, initrdName)).size;
    const img: ImageRecord = {
      key,
      dir,
      kernel: kernelPath,
      initrd: path.join(dir, initrdName),
      usrDir: usrFiles.length ? path.join(dir, "usr") : null,
      layout,
      kernelVersion: kernel.version,
      initrdBytes,
      compression,
      runc: !!runc,
      modules,
      inputs,
      kernelArtifact: { path: kernelPath, size: fs.statSync(kernelPath).size, sha256: sha256Of(kernelPath) },
      initrdSha256: sha256Of(path.join(tmp, initrdName)),
      usrTree: usrFiles.length ? treeDigest(usrTmp) : null,
      builtAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(tmp, "image.json"), JSON.stringify(img, null, 2));
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // Another builder got there first with the same inputs: theirs is as good.
      if (!fs.existsSync(recordFile)) throw e;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    pruneImages(path.join(cacheDir, "images"), KEEP_IMAGES, key);
    pruneManifests(cacheDir);
    rememberKey();
    const out = finish(img, true);
    say(`built image ${key}: kernel ${kernel.version}, initramfs ${(initrdBytes / 1e6).toFixed(1)} MB${img.usrDir ? `, /usr ${img.usrDir}` : ""}, ${out.buildMs} ms`);
    return out;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
