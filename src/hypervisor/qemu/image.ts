// The guest image: an uncompressed kernel, an initramfs holding busybox, the
// shared libraries and (for Debian's kernel) the virtio/9p modules, and a /usr
// tree with node, runc and the mock agent's bundle, its startup snapshot and
// the native addon. /usr is shared read-only into the guest over 9p (layout
// "share"): under TCG the kernel unpacks every initramfs byte before /init,
// while a share pages in only what node touches. Layout "initramfs" puts /usr
// in the initramfs too, for a guest without the share. Everything is cached
// under a key made of the content of every input, so a rebuild happens only
// when something that goes into the image changed.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { spawn, spawnSync } from "node:child_process";
import { addonPath } from "../../native";
import { which } from "../../util/which";
import { CpioWriter, S_IFCHR, S_IFDIR, S_IFREG, type CpioEntry } from "./cpio";
import { extractVmlinux, findKernel, type KernelSource } from "./kernel";
import { findGuestKernel } from "./guest-kernel";
import { SNAPSHOT_BUILD_PARAM, GUEST_AGENT_BUNDLE, GUEST_AGENT_SNAPSHOT, GUEST_APP_DIR, GUEST_SNAPSHOT_ENTRY, guestInit } from "./guest-init";
import { qemuArgs } from "./cmdline";

/** Bumped when the layout of the image changes in a way the inputs do not show. */
const IMAGE_FORMAT = 4;

export type ImageLayout = "share" | "initramfs";

/** What the guest needs: the agent channel, the PCI/MMIO transports, and 9p for kataShared. */
export const GUEST_MODULES = ["virtio_pci", "virtio_mmio", "virtio_console", "9pnet_virtio", "9p", "virtio_net"];

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.SHIMLAB_CACHE_DIR || "/var/cache/shimlab";
}

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

export interface GuestImage {
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
  /** False when it came from the cache. */
  built: boolean;
  buildMs: number;
}

interface FileInput {
  /** Path in the guest, relative. */
  dest: string;
  src: string;
  mode?: number;
  /** Debug symbols out (node carries 12 MB): less initramfs for the kernel to unpack under TCG. */
  strip?: boolean;
}

/** The file's bytes, without symbols when asked and strip(1) is there. */
function contentOf(f: FileInput, stripBin: string | null, tmpDir: string): Buffer {
  if (!f.strip || !stripBin) return fs.readFileSync(f.src);
  const out = path.join(tmpDir, `.strip-${path.basename(f.src)}`);
  const r = spawnSync(stripBin, ["--strip-all", "-o", out, f.src], { encoding: "utf8" });
  if (r.status !== 0) return fs.readFileSync(f.src); // not an ELF strip understands: as is
  try {
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(out, { force: true });
  }
}

/** Shared libraries a dynamic ELF needs, as ldd resolves them (empty for static binaries). */
export function sharedLibs(bin: string): string[] {
  const r = spawnSync("ldd", [bin], { encoding: "utf8" });
  if (r.status !== 0) return []; // "not a dynamic executable"
  const out = new Set<string>();
  for (const m of r.stdout.matchAll(/(\/[^\s)]+)/g)) if (!m[1].startsWith("/proc")) out.add(m[1]);
  return [...out];
}

/** Load order of modules and everything they depend on, from modules.dep. */
export function moduleOrder(depText: string, wanted: string[]): { name: string; rel: string }[] {
  const deps = new Map<string, string[]>();
  const relOf = new Map<string, string>();
  const nameOf = (rel: string) => path.basename(rel).replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
  for (const line of depText.split("\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const rel = line.slice(0, i).trim();
    const n = nameOf(rel);
    relOf.set(n, rel);
    deps.set(n, line.slice(i + 1).trim().split(/\s+/).filter(Boolean).map(nameOf));
  }
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string, chain: string[]) => {
    if (seen.has(n)) return;
    if (!relOf.has(n)) throw new Error(`kernel module ${n} is not in modules.dep${chain.length ? ` (needed by ${chain.join(" <- ")})` : ""}`);
    seen.add(n);
    for (const d of deps.get(n) ?? []) visit(d, [n, ...chain]);
    order.push(n);
  };
  for (const w of wanted) visit(w.replace(/-/g, "_"), []);
  return order.map((name) => ({ name, rel: relOf.get(name)! }));
}

/** The compiled files a program needs: its relative require() closure inside dist. */
export function requireClosure(distDir: string, entry: string): string[] {
  const out = new Set<string>();
  const todo = [path.resolve(distDir, entry)];
  while (todo.length) {
    const f = todo.pop()!;
    if (out.has(f)) continue;
    out.add(f);
    const src = fs.readFileSync(f, "utf8");
    for (const m of src.matchAll(/require\("([^"]+)"\)/g)) {
      const spec = m[1];
      if (!spec.startsWith(".")) {
        if (spec.startsWith("node:") || isBuiltin(spec)) continue;
        throw new Error(`${path.relative(distDir, f)} requires the package ${spec}: the guest image carries no node_modules`);
      }
      const base = path.resolve(path.dirname(f), spec);
      const hit = [base, base + ".js", path.join(base, "index.js")].find((p) => fs.existsSync(p) && fs.statSync(p).isFile());
      if (hit) todo.push(hit);
      // a require the program builds at run time (the native addon) is added by the caller
    }
  }
  return [...out].sort();
}

function isBuiltin(spec: string): boolean {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require("node:module") as typeof import("node:module")).builtinModules.includes(spec);
}

function sha256File(p: string, h: crypto.Hash): void {
  const fd = fs.openSync(p, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The compiled tree: this file's own when it runs compiled (bundled: dist/bundle), the build's dist/ when run from src (tests). */
function defaultDist(): string {
  if (path.basename(__dirname) === "bundle") return path.dirname(__dirname);
  const here = path.resolve(__dirname, "..", "..");
  return path.basename(here) === "src" ? path.join(path.dirname(here), "dist") : here;
}

/** Every file that goes into the initramfs, with its destination. */
function collectInputs(o: Required<Pick<ImageOptions, "node" | "busybox" | "distDir" | "nativeAddon">> & { kernel: KernelSource; runc: string | null }) {
  const files: FileInput[] = [];
  const libs = new Set<string>();
  files.push({ dest: "bin/busybox", src: o.busybox, mode: 0o755 });
  sharedLibs(o.busybox).forEach((l) => libs.add(l));
  files.push({ dest: "usr/bin/node", src: o.node, mode: 0o755, strip: true });
  sharedLibs(o.node).forEach((l) => libs.add(l));
  if (o.runc) {
    files.push({ dest: "usr/sbin/runc", src: o.runc, mode: 0o755 });
    sharedLibs(o.runc).forEach((l) => libs.add(l));
  }
  // One bundled file (no module resolution in the guest) and its startup snapshot.
  for (const name of ["mock-agent.js", "mock-agent-snapshot.js"]) {
    const src = path.join(o.distDir, "bundle", name);
    if (!fs.existsSync(src)) throw new Error(`${src} is missing: run "npm run build"`);
    requireClosure(o.distDir, path.join("bundle", name)); // it must need no package the guest lacks
  }
  files.push({ dest: GUEST_AGENT_BUNDLE.slice(1), src: path.join(o.distDir, "bundle", "mock-agent.js") });
  files.push({ dest: GUEST_SNAPSHOT_ENTRY.slice(1), src: path.join(o.distDir, "bundle", "mock-agent-snapshot.js") });
  files.push({ dest: path.join(GUEST_APP_DIR.slice(1), "native/build/shimlab.node"), src: o.nativeAddon, mode: 0o755 });
  sharedLibs(o.nativeAddon).forEach((l) => libs.add(l));
  for (const l of libs) files.push({ dest: l.slice(1), src: fs.realpathSync(l), mode: 0o755 });
  const modulesDir = o.kernel.modulesDir;
  if (!modulesDir) return { files, modules: [] }; // everything built in
  const mods = moduleOrder(fs.readFileSync(path.join(modulesDir, "modules.dep"), "utf8"), GUEST_MODULES);
  for (const m of mods) {
    if (!m.rel.endsWith(".ko")) throw new Error(`module ${m.rel} is compressed; shimlab's image builder takes plain .ko files (Debian 12's)`);
    files.push({ dest: `lib/modules/${m.name}.ko`, src: path.join(modulesDir, m.rel) });
  }
  return { files, modules: mods.map((m) => m.name) };
}

function dirsOf(files: string[]): string[] {
  const dirs = new Set<string>();
  for (const f of files) for (let d = path.dirname(f); d !== "." && d !== "/"; d = path.dirname(d)) dirs.add(d);
  return [...dirs].sort();
}

/** A file behind the image's compression; `done` settles once everything written is on disk. */
function compressedFile(file: fs.WriteStream, compression: string): { sink: import("node:stream").Writable; done: Promise<void> } {
  const fileDone = new Promise<void>((resolve, reject) => {
    file.on("close", resolve);
    file.on("error", reject);
  });
  if (compression === "lz4") {
    // The kernel reads only lz4's legacy frame format (-l).
    const p = spawn("lz4", ["-l", "-c", "-1"], { stdio: ["pipe", "pipe", "pipe"] });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    p.stdout.pipe(file);
    const done = new Promise<void>((resolve, reject) => {
      p.on("error", reject);
      p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`lz4 exited ${code}: ${err.trim()}`))));
    }).then(() => fileDone);
    return { sink: p.stdin, done };
  }
  if (compression === "gzip") {
    const z = zlib.createGzip({ level: 1 });
    z.pipe(file);
    return { sink: z, done: fileDone };
  }
  return { sink: file, done: fileDone };
}

async function writeInitramfs(out: string, entries: () => AsyncGenerator<CpioEntry>, compression: string, progress: (n: number) => void): Promise<void> {
  const { sink, done } = compressedFile(fs.createWriteStream("", { fd: fs.openSync(out, "w", 0o644) }), compression);
  const w = new CpioWriter(sink);
  for await (const e of entries()) {
    await w.add(e);
    progress(w.bytes);
  }
  await w.finish();
  sink.end();
  await done;
}

/** Later archives in one initramfs add files to earlier ones: the snapshot, made after the rest. */
function cpioOf(entries: CpioEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new (require("node:stream") as typeof import("node:stream")).Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  return (async () => {
    const w = new CpioWriter(sink);
    for (const e of entries) await w.add(e);
    await w.finish();
    return Buffer.concat(chunks);
  })();
}

/** Concatenates files into one compressed stream (the kernel's lz4 reads only one legacy-format stream). */
async function compressFiles(parts: string[], out: string, compression: string): Promise<void> {
  const { sink, done } = compressedFile(fs.createWriteStream(out, { mode: 0o644 }), compression);
  for (const p of parts) {
    for await (const chunk of fs.createReadStream(p)) {
      if (!sink.write(chunk)) await new Promise((r) => sink.once("drain", r));
    }
  }
  sink.end();
  await done;
}

/**
 * The agent's V8 startup snapshot, made by the guest's own node inside a TCG VM: a snapshot loads
 * only where V8 sees the CPU features and flags it was made with, and TCG's CPU is not the host's.
 * The guest shares a directory over 9p, writes the snapshot there and powers off. Null when it fails.
 */
async function snapshotInVm(qemu: string, kernel: string, initrd: string, usrDir: string | null, tmp: string): Promise<Buffer | null> {
  const dir = fs.mkdtempSync(path.join(tmp, ".snapvm-"));
  const share = path.join(dir, "share");
  fs.mkdirSync(share);
  const args = qemuArgs({
    machine: "q35",
    accel: "tcg",
    memoryMb: 512,
    vcpus: 1,
    kernel,
    initrd,
    kernelParams: [SNAPSHOT_BUILD_PARAM],
    agentSocket: path.join(dir, "a.sock"),
    qmpSocket: path.join(dir, "q.sock"),
    consoleSocket: path.join(dir, "c.sock"),
    sharedDir: share,
    usrDir: usrDir ?? undefined,
  });
  const p = spawn(qemu, args, { stdio: "ignore", cwd: dir });
  const timer = setTimeout(() => p.kill("SIGKILL"), SNAPSHOT_VM_TIMEOUT_MS);
  try {
    await new Promise<void>((resolve) => {
      p.once("exit", () => resolve());
      p.once("error", () => resolve());
    });
    const blob = path.join(share, "agent.blob");
    return fs.existsSync(blob) && fs.statSync(blob).size > 0 ? fs.readFileSync(blob) : null;
  } finally {
    clearTimeout(timer);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const SNAPSHOT_VM_TIMEOUT_MS = 180_000;

/** Images kept in the cache: each change to the agent's code makes a new one. */
const KEEP_IMAGES = 6;

/** The uncompressed kernel, extracted once per bzImage (by content) and shared by every image built on it. */
function extractedKernel(cacheDir: string, kernel: KernelSource, say: (m: string) => void): string {
  if (kernel.elf) return kernel.path;
  const h = crypto.createHash("sha256");
  sha256File(kernel.path, h);
  const dir = path.join(cacheDir, "kernels", h.digest("hex").slice(0, 20));
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
function removeStaleBuilds(imagesDir: string): void {
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
  let pids: string[] = [];
  try {
    pids = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n));
  } catch {
    return used;
  }
  const marker = `path=${imagesDir}/`;
  for (const pid of pids) {
    let cmd: string;
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "latin1");
    } catch {
      continue; // gone
    }
    for (let i = cmd.indexOf(marker); i >= 0; i = cmd.indexOf(marker, i + 1)) used.add(cmd.slice(i + marker.length).split(/[/,\0]/)[0]);
  }
  return used;
}

/**
 * Keeps the newest images (and the one just made). QEMU holds the kernel and initramfs it booted
 * in memory, but reads /usr from the image as the guest runs: an image a QEMU shares is kept.
 */
function pruneImages(imagesDir: string, keep: number, current: string): void {
  const inUse = imagesInUse(imagesDir);
  const imgs = fs
    .readdirSync(imagesDir)
    .filter((n) => !n.startsWith(".") && n !== current && !inUse.has(n))
    .map((n) => ({ n, t: fs.statSync(path.join(imagesDir, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { n } of imgs.slice(Math.max(0, keep - 1))) fs.rmSync(path.join(imagesDir, n), { recursive: true, force: true });
}

/** Returns the cached image for these inputs, building it first when there is none. */
export async function ensureImage(o: ImageOptions = {}): Promise<GuestImage> {
  const t0 = Date.now();
  const say = o.onProgress ?? (() => {});
  // As a sandbox with guest_kernel = "auto" chooses: shimlab's guest kernel once built, else Debian's.
  const kernel = o.kernel ?? findGuestKernel(o.cacheDir ?? cacheRoot()) ?? findKernel();
  if (!kernel) throw new Error("no guest kernel: install linux-image-amd64 (a /boot/vmlinuz-* with /lib/modules/<version>/modules.dep), or build shimlab's with `shimlab image build --kernel`");
  const busybox = o.busybox ?? ["/bin/busybox", "/usr/bin/busybox"].find((p) => fs.existsSync(p));
  if (!busybox) throw new Error("no busybox: install busybox-static");
  if (sharedLibs(busybox).length && !o.busybox) say(`note: ${busybox} is dynamically linked; its libraries go into the image too`);
  const node = o.node ?? process.execPath;
  const distDir = o.distDir ?? defaultDist();
  const nativeAddon = o.nativeAddon ?? addonPath();
  if (!fs.existsSync(nativeAddon)) throw new Error(`native addon ${nativeAddon} is missing: run "npm run build"`);
  const runc = o.runc ? which("runc") : null;
  if (o.runc && !runc) throw new Error('runc is not installed on the host, so it cannot go into the guest image (install runc, or use [qemu] guest_runtime = "host")');
  const compression = o.compression ?? (which("lz4") ? "lz4" : "gzip");
  const stripBin = which("strip");
  const qemu = o.qemuPath === undefined ? which("qemu-system-x86_64") : o.qemuPath;
  const cacheDir = o.cacheDir ?? cacheRoot();
  const layout = o.layout ?? "share";

  const { files, modules } = collectInputs({ node, busybox, distDir, nativeAddon, kernel, runc });
  const init = guestInit(modules, { usrShare: layout === "share" });

  // Hashing 110 MB costs a shim 0.1-0.4 s per sandbox: a fingerprint of the inputs' stat data
  // (path, size, mtime, inode, as make and ccache trust) remembers the content key it last had.
  const fp = crypto.createHash("sha256");
  fp.update(`format ${IMAGE_FORMAT}\nlayout ${layout}\ncompression ${compression}\nstrip ${!!stripBin}\nsnapshot ${!!qemu}\n${init}`);
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
  if (!/^[0-9a-f]{20}$/.test(key) || !fs.existsSync(path.join(cacheDir, "images", key, "image.json"))) {
    say(`hashing ${files.length + 1} inputs`);
    const h = crypto.createHash("sha256");
    h.update(`format ${IMAGE_FORMAT}\nlayout ${layout}\ncompression ${compression}\nstrip ${!!stripBin}\nsnapshot ${!!qemu}\n`);
    h.update(init);
    sha256File(kernel.path, h);
    for (const f of files) {
      h.update(`\n${f.dest} ${f.mode ?? 0o644}\n`);
      sha256File(f.src, h);
    }
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
  const dir = path.join(cacheDir, "images", key);
  const manifest = path.join(dir, "image.json");
  if (fs.existsSync(manifest)) {
    const img = JSON.parse(fs.readFileSync(manifest, "utf8")) as GuestImage;
    if (fs.existsSync(img.kernel) && fs.existsSync(img.initrd) && (!img.usrDir || fs.existsSync(img.usrDir))) {
      say(`cached image ${key}`);
      rememberKey();
      try {
        const now = new Date();
        fs.utimesSync(dir, now, now); // recently used: kept by pruning
      } catch {
        /* read-only cache: fine */
      }
      return { ...img, built: false, buildMs: Date.now() - t0 };
    }
  }

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
    const img: GuestImage = {
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
      built: true,
      buildMs: 0,
    };
    fs.writeFileSync(path.join(tmp, "image.json"), JSON.stringify(img, null, 2));
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // Another builder got there first with the same inputs: theirs is as good.
      if (!fs.existsSync(manifest)) throw e;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    pruneImages(path.join(cacheDir, "images"), KEEP_IMAGES, key);
    rememberKey();
    const buildMs = Date.now() - t0;
    say(`built image ${key}: kernel ${kernel.version}, initramfs ${(initrdBytes / 1e6).toFixed(1)} MB${img.usrDir ? `, /usr ${img.usrDir}` : ""}, ${buildMs} ms`);
    return { ...img, buildMs };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
