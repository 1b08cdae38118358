// shimlab's own guest kernel, as Kata ships one: Debian's kernel source
// (linux-source-6.1) configured by kernel/guest.config for a VM that only has
// virtio devices, everything built in. Under TCG every instruction of a boot
// is translated, and Debian's distribution kernel spends most of its boot
// probing hardware a VM lacks and loading the modules it needs; this one
// reaches /init in a fraction of that (bench/README.md, "Boot time").
//
// Built once by `shimlab image build --kernel` (minutes), cached under
// <cache>/kernels/vm-<key>/; an image build for guest_kernel "auto" looks it up.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { findKernel, hasPvhNote, type KernelSource } from "./kernel";
import { which } from "../util/which";

/** Bumped when the build steps change what comes out for the same inputs. */
const BUILD_FORMAT = 1;
export const GUEST_KERNEL_PREFIX = "vm-";

/** kernel/guest.config, found from src/guest-image or dist/guest-image (and in an installed copy). */
export function guestConfigPath(): string {
  const p = findGuestConfig();
  if (!p) throw new Error(`kernel/guest.config not found above ${__dirname}`);
  return p;
}

export function findGuestConfig(): string | null {
  for (const up of ["../..", ".."]) {
    const p = path.resolve(__dirname, up, "kernel", "guest.config");
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** The fragment's settings: CONFIG_X=y|n|"string"|number, and "# CONFIG_X is not set" as n. */
export function parseFragment(text: string): Map<string, string> {
  const out = new Map<string, string>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset) return void out.set(unset[1], "n");
    if (line.startsWith("#")) return;
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(y|n|m|-?\d+|0x[0-9a-fA-F]+|"[^"\\]*")$/.exec(line);
    if (!m) throw new Error(`kernel/guest.config:${i + 1}: ${JSON.stringify(line)}: want CONFIG_NAME=value`);
    if (m[2] === "m") throw new Error(`kernel/guest.config:${i + 1}: ${m[1]}=m: the guest kernel has no modules`);
    out.set(m[1], m[2]);
  });
  return out;
}

/** Settings of the fragment the resolved .config does not have (Kconfig drops what a dependency forbids). */
export function unmetSettings(fragment: Map<string, string>, dotConfig: string): string[] {
  const have = new Map<string, string>();
  for (const line of dotConfig.split("\n")) {
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) have.set(m[1], m[2]);
  }
  const missing: string[] = [];
  for (const [k, v] of fragment) {
    const got = have.get(k) ?? "n";
    if (got !== v) missing.push(`${k}=${v} (got ${got === "n" ? "not set" : got})`);
  }
  return missing;
}

/** Debian's kernel source tarballs, newest version last. */
export function findKernelSources(dir = "/usr/src"): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => /^linux-source-[\d.]+\.tar\.(xz|gz|bz2)$/.test(n));
  } catch {
    return [];
  }
  return names.sort((a, b) => a.localeCompare(b, "en", { numeric: true })).map((n) => path.join(dir, n));
}

function fragmentKey(fragment: string): string {
  return crypto.createHash("sha256").update(`format ${BUILD_FORMAT}\n${fragment}`).digest("hex").slice(0, 12);
}

/** The start of the cache directory names of kernels built from this fragment. */
export function kernelDirPrefix(configPath: string): string {
  return `${GUEST_KERNEL_PREFIX}${fragmentKey(fs.readFileSync(configPath, "utf8"))}-`;
}

/** A built kernel's directory name: the fragment's key, then the source's (name, size, mtime). */
function buildKey(fragment: string, source: string): string {
  const st = fs.statSync(source);
  const src = crypto.createHash("sha256").update(`${path.basename(source)} ${st.size} ${st.mtimeMs}`).digest("hex").slice(0, 8);
  return `${GUEST_KERNEL_PREFIX}${fragmentKey(fragment)}-${src}`;
}

interface BuiltInfo {
  version: string;
  source: string;
  buildMs: number;
}

function sourceOf(dir: string): KernelSource | null {
  const vmlinux = path.join(dir, "vmlinux");
  try {
    const info = JSON.parse(fs.readFileSync(path.join(dir, "kernel.json"), "utf8")) as BuiltInfo;
    if (!fs.existsSync(vmlinux)) return null;
    return { path: vmlinux, version: info.version, modulesDir: null, elf: true };
  } catch {
    return null;
  }
}

/**
 * The built guest kernel for the current kernel/guest.config, or null when none was built. Only
 * the fragment has to match: a kernel built from an older linux-source still serves after an upgrade.
 */
export function findGuestKernel(cacheDir: string, configPath = findGuestConfig()): KernelSource | null {
  if (!configPath) return null; // a copy of shimlab without kernel/: it cannot know which build is its own
  const prefix = kernelDirPrefix(configPath);
  const root = path.join(cacheDir, "kernels");
  let dirs: string[];
  try {
    dirs = fs.readdirSync(root).filter((n) => n.startsWith(prefix));
  } catch {
    return null;
  }
  const found = dirs
    .map((n) => ({ k: sourceOf(path.join(root, n)), t: fs.statSync(path.join(root, n)).mtimeMs }))
    .filter((x) => x.k)
    .sort((a, b) => b.t - a.t);
  return found[0]?.k ?? null;
}

export interface GuestKernelBuild {
  kernel: KernelSource;
  built: boolean;
  buildMs: number;
}

export interface BuildOptions {
  cacheDir: string;
  /** A linux-source tarball (default: the newest in /usr/src). */
  source?: string;
  configPath?: string;
  jobs?: number;
  /** Each step; a count while compiling comes as a "status" (the CLI rewrites it in place on a terminal). */
  onProgress?: (msg: string, kind?: "status") => void;
}

/** What building the kernel takes on Debian 12, the source included. */
export const BUILD_PACKAGES = ["linux-source-6.1", "gcc", "make", "libc6-dev", "bc", "bison", "flex", "libelf-dev"];

/** The build's tools (and objtool's libelf header) this machine lacks. */
export function missingBuildTools(pathEnv = process.env.PATH ?? "/usr/bin:/bin", includeDir = "/usr/include"): string[] {
  const dirs = pathEnv.split(":").filter(Boolean);
  const lacking = ["make", "gcc", "bc", "bison", "flex", "tar", "xz"].filter((b) => !which(b, dirs));
  if (!fs.existsSync(path.join(includeDir, "gelf.h"))) lacking.push("libelf's headers (gelf.h)");
  return lacking;
}

/** Kernels kept: the newest builds (another checkout's fragment may be using one of them). */
const KEEP_KERNELS = 3;

/** A QEMU reads its kernel once at start, so removing an older build never disturbs a running VM. */
function pruneKernels(root: string, keep: number): void {
  const built = fs
    .readdirSync(root)
    .filter((n) => n.startsWith(GUEST_KERNEL_PREFIX))
    .map((n) => ({ n, t: fs.statSync(path.join(root, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { n } of built.slice(keep)) fs.rmSync(path.join(root, n), { recursive: true, force: true });
}

/** Build trees (~1 GB) a killed build left behind, once they are an hour old. */
function removeStale(root: string): void {
  const old = Date.now() - 3600_000;
  for (const n of fs.readdirSync(root)) {
    if (!n.startsWith(".build-") && !/\.\d+$/.test(n)) continue;
    try {
      if (fs.statSync(path.join(root, n)).mtimeMs < old) fs.rmSync(path.join(root, n), { recursive: true, force: true });
    } catch {
      /* raced with its owner */
    }
  }
}

/** Runs a build step; its output is kept only for the error message, and lines are counted for progress. */
function run(cmd: string, args: string[], cwd: string, onLine?: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    // A fixed builder name keeps uname -v the same on every machine.
    const p = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C", KBUILD_BUILD_USER: "shimlab", KBUILD_BUILD_HOST: "shimlab" } });
    let tail = "";
    let partial = "";
    const take = (d: Buffer) => {
      const s = partial + d.toString();
      const lines = s.split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) onLine?.(l);
      tail = (tail + d.toString()).slice(-4000);
    };
    p.stdout.on("data", take);
    p.stderr.on("data", take);
    p.on("error", (e) => reject(new Error(`${cmd}: ${e.message}`)));
    p.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(" ")} exited ${code}:\n${tail.trim().split("\n").slice(-15).join("\n")}`));
    });
  });
}

/** Builds the guest kernel unless the cache has it for this fragment and source. */
export async function buildGuestKernel(o: BuildOptions): Promise<GuestKernelBuild> {
  const say = o.onProgress ?? (() => {});
  const configPath = o.configPath ?? guestConfigPath();
  const fragmentText = fs.readFileSync(configPath, "utf8");
  const fragment = parseFragment(fragmentText);
  const source = o.source ?? findKernelSources().at(-1);
  if (!source) throw new Error(`no kernel source: apt-get install ${BUILD_PACKAGES.join(" ")} (Debian's kernel source is /usr/src/linux-source-6.1.tar.xz)`);
  const root = path.join(o.cacheDir, "kernels");
  const dir = path.join(root, buildKey(fragmentText, source));
  const cached = sourceOf(dir);
  if (cached) return { kernel: cached, built: false, buildMs: 0 };

  const lacking = missingBuildTools();
  if (lacking.length) throw new Error(`cannot build the guest kernel without ${lacking.join(", ")}: apt-get install ${BUILD_PACKAGES.join(" ")}`);
  const t0 = Date.now();
  fs.mkdirSync(root, { recursive: true, mode: 0o755 });
  removeStale(root);
  const tmp = fs.mkdtempSync(path.join(root, ".build-"));
  try {
    say(`unpacking ${source}`);
    await run("tar", ["-xf", source, "-C", tmp], tmp);
    const top = fs.readdirSync(tmp).find((n) => fs.existsSync(path.join(tmp, n, "Makefile")));
    if (!top) throw new Error(`${source} holds no kernel tree`);
    const src = path.join(tmp, top);
    // allnoconfig with the fragment as its base: only what the fragment asks for and what that needs.
    say(`configuring from ${configPath}`);
    await run("make", ["-s", `KCONFIG_ALLCONFIG=${configPath}`, "allnoconfig"], src);
    const unmet = unmetSettings(fragment, fs.readFileSync(path.join(src, ".config"), "utf8"));
    if (unmet.length) throw new Error(`kernel/guest.config asks for settings Kconfig would not give (a dependency is missing):\n  ${unmet.join("\n  ")}`);
    const jobs = o.jobs ?? os.cpus().length;
    say(`compiling vmlinux with ${jobs} jobs (a few minutes)`);
    let objects = 0;
    let last = Date.now();
    await run("make", [`-j${jobs}`, "vmlinux"], src, (line) => {
      if (/^\s+CC\s/.test(line)) objects++;
      if (Date.now() - last > 15_000) {
        last = Date.now();
        say(`compiled ${objects} objects (${Math.round((last - t0) / 1000)} s)`, "status");
      }
    });
    const vmlinux = path.join(src, "vmlinux");
    if (!hasPvhNote(fs.readFileSync(vmlinux))) throw new Error("the built vmlinux has no PVH entry note (CONFIG_PVH): QEMU cannot boot it directly");
    let version = "";
    await run("make", ["-s", "kernelrelease"], src, (l) => (version = version || l.trim()));
    const buildMs = Date.now() - t0;
    const stage = `${dir}.${process.pid}`;
    fs.mkdirSync(stage, { recursive: true, mode: 0o755 });
    fs.copyFileSync(vmlinux, path.join(stage, "vmlinux"));
    fs.copyFileSync(path.join(src, ".config"), path.join(stage, "config"));
    fs.writeFileSync(path.join(stage, "kernel.json"), JSON.stringify({ version, source, buildMs } satisfies BuiltInfo, null, 2) + "\n");
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(stage, dir);
    pruneKernels(root, KEEP_KERNELS);
    say(`built guest kernel ${version} in ${Math.round(buildMs / 1000)} s (${objects} objects): ${dir}/vmlinux`);
    return { kernel: sourceOf(dir)!, built: true, buildMs };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The kernel an image is built for: shimlab's own guest kernel when it was built (`shimlab image
 * build --kernel`), else Debian's; "shimlab" and "debian" insist on one. Only `--kernel` builds a
 * kernel: that takes minutes.
 */
export function guestKernel(setting: "auto" | "shimlab" | "debian", cacheDir: string): KernelSource {
  if (setting !== "debian") {
    const built = findGuestKernel(cacheDir);
    if (built) return built;
    if (setting === "shimlab") throw new Error(`no shimlab guest kernel is built in ${cacheDir}/kernels: run \`shimlab image build --kernel\` (needs linux-source-6.1)`);
  }
  const debian = findKernel();
  if (!debian) throw new Error("no guest kernel: install linux-image-amd64, or build shimlab's with `shimlab image build --kernel`");
  return debian;
}
