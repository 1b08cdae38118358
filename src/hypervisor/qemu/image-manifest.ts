// The guest image as a sandbox sees it: the manifest `shimlab image build`
// (src/guest-image) writes beside the image. A build takes seconds to minutes,
// boots a VM of its own and needs tools a node running pods should not need,
// so a sandbox start only reads the manifest and checks it still describes
// what this shimlab would put in the guest; a missing or stale image fails the
// start with the command that makes it.
//
// One manifest per agent and variant: <cache>/image-manifests/<variant>-<agent id>.json.
// The agent id is the content of the agent's files (its bundle, startup
// snapshot entry and the native addon), which change at every `npm run build`,
// so checkouts and installed copies sharing a cache never read each other's.
// Checking costs a hash of those files (under 1 MB) and a stat of the rest:
// node, busybox, runc, their libraries and the kernel are hashed only when
// their stat data changed, as make trusts them.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { addonPath } from "../../native";
import { GUEST_AGENT_BUNDLE, GUEST_APP_DIR, GUEST_SNAPSHOT_ENTRY, guestInit } from "./guest-init";

/** Bumped when what the builder makes from the same inputs changes: older images are then stale. */
export const IMAGE_FORMAT = 5;
export const MANIFEST_FORMAT = 1;
const DEFAULT_CACHE = "/var/cache/shimlab";

export type ImageLayout = "share" | "initramfs";
/** shimlab's guest kernel (everything built in) or Debian's (virtio and 9p as modules). */
export type KernelFlavour = "shimlab" | "debian";

export interface ImageVariant {
  kernel: KernelFlavour;
  layout: ImageLayout;
  /** runc is in the guest (and crun, when the host had it): guest_runtime = "runc" or "crun" needs it. */
  runc: boolean;
}

/** Where crun is in an image that has it. */
export const GUEST_CRUN = "usr/bin/crun";

export interface InputRecord {
  /** Where it is in the guest, relative ("usr/bin/node"), or what it is ("kernel"). */
  dest: string;
  path: string;
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

export interface ArtifactRecord {
  path: string;
  size: number;
  sha256: string;
}

export interface ImageManifest {
  format: number;
  imageFormat: number;
  /** When the image (not this manifest) was built. */
  builtAt: string;
  agentId: string;
  /** The content key of the image directory (<cache>/images/<key>). */
  key: string;
  variant: ImageVariant;
  kernelVersion: string;
  compression: string;
  /** Modules /init loads (Debian's kernel), which decide the /init script. */
  modules: string[];
  initSha256: string;
  kernel: ArtifactRecord;
  initrd: ArtifactRecord;
  /** The /usr tree QEMU shares read-only (layout "share"): sha256 over its files' names, modes and contents. */
  usr: { path: string; files: number; bytes: number; sha256: string } | null;
  /** The agent's files, which make agentId. */
  agent: { dest: string; path: string; sha256: string }[];
  /** Everything else that went in: the kernel (and its config), node, busybox, runc, libraries, modules. */
  inputs: InputRecord[];
}

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.SHIMLAB_CACHE_DIR || DEFAULT_CACHE;
}

/** The compiled tree: dist/ whether this runs bundled (dist/bundle), compiled (dist/hypervisor/qemu) or from src (tests). */
export function shimlabDist(): string {
  if (path.basename(__dirname) === "bundle") return path.dirname(__dirname);
  const here = path.resolve(__dirname, "..", "..");
  return path.basename(here) === "src" ? path.join(path.dirname(here), "dist") : here;
}

/** The agent's files and where they go in the guest: the one list the builder and the check share. */
export function agentFiles(distDir = shimlabDist(), addon = addonPath()): { dest: string; path: string; mode?: number }[] {
  return [
    { dest: GUEST_AGENT_BUNDLE.slice(1), path: path.join(distDir, "bundle", "mock-agent.js") },
    { dest: GUEST_SNAPSHOT_ENTRY.slice(1), path: path.join(distDir, "bundle", "mock-agent-snapshot.js") },
    { dest: path.join(GUEST_APP_DIR.slice(1), "native/build/shimlab.node"), path: addon, mode: 0o755 },
  ];
}

export function sha256Of(file: string): string {
  const h = crypto.createHash("sha256");
  const fd = fs.openSync(file, "r");
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
  return h.digest("hex");
}

export interface AgentIdentity {
  id: string;
  files: { dest: string; path: string; sha256: string }[];
}

/** The agent's files by content; throws when one is missing (an unbuilt checkout). */
export function agentIdentity(files = agentFiles()): AgentIdentity {
  const out = files.map((f) => {
    if (!fs.existsSync(f.path)) throw new Error(`${f.path} is missing: run "npm run build"`);
    return { dest: f.dest, path: f.path, sha256: sha256Of(f.path) };
  });
  return { id: agentIdOf(out), files: out };
}

export function agentIdOf(files: { dest: string; sha256: string }[]): string {
  const h = crypto.createHash("sha256").update(`image format ${IMAGE_FORMAT}\n`);
  for (const f of files) h.update(`${f.dest} ${f.sha256}\n`);
  return h.digest("hex").slice(0, 16);
}

export function variantName(v: ImageVariant): string {
  return `${v.kernel}-${v.layout}${v.runc ? "-runc" : ""}`;
}

export function manifestDir(cacheDir: string): string {
  return path.join(cacheDir, "image-manifests");
}

export function manifestPath(cacheDir: string, v: ImageVariant, agentId: string): string {
  return path.join(manifestDir(cacheDir), `${variantName(v)}-${agentId}.json`);
}

export function initSha256(modules: string[], layout: ImageLayout): string {
  return crypto.createHash("sha256").update(guestInit(modules, { usrShare: layout === "share" })).digest("hex");
}

/** Why the image a manifest describes is not what this shimlab would build now, or null when it is. */
export function staleness(m: ImageManifest): string | null {
  if (m.format !== MANIFEST_FORMAT || m.imageFormat !== IMAGE_FORMAT) return `it was made by another version of the builder (image format ${m.imageFormat}, this shimlab's is ${IMAGE_FORMAT})`;
  for (const [what, a] of [["kernel", m.kernel], ["initramfs", m.initrd]] as const) {
    let size: number;
    try {
      size = fs.statSync(a.path).size;
    } catch {
      return `its ${what} ${a.path} is gone`;
    }
    if (size !== a.size) return `its ${what} ${a.path} changed since it was built`;
  }
  if (m.usr && !fs.existsSync(m.usr.path)) return `its /usr ${m.usr.path} is gone`;
  if (initSha256(m.modules, m.variant.layout) !== m.initSha256) return "the guest's /init changed (src/hypervisor/qemu/guest-init.ts)";
  for (const i of m.inputs) {
    let st: fs.Stats;
    try {
      st = fs.statSync(i.path);
    } catch {
      return `${i.path} (${i.dest}) is gone`;
    }
    if (st.size === i.size && st.mtimeMs === i.mtimeMs && st.ino === i.ino) continue;
    if (st.size !== i.size || sha256Of(i.path) !== i.sha256) return `${i.path} (${i.dest}) changed since it was built`;
  }
  return null;
}

export interface ImageWanted {
  cacheDir: string;
  /** In order of preference ([qemu] guest_kernel "auto": shimlab's, then Debian's). */
  kernels: KernelFlavour[];
  layout: ImageLayout;
  /** guest_runtime = "runc" or "crun": the image must hold runc; otherwise one without is preferred. */
  runc: boolean;
  /** guest_runtime = "crun": the image must hold crun too. */
  crun?: boolean;
  /** The agent's files (default: this shimlab's). */
  agent?: { dest: string; path: string }[];
}

/** The command that builds the image wanted, for the error that asks for it. */
export function buildCommand(w: Pick<ImageWanted, "cacheDir" | "kernels" | "layout">): string {
  const args = ["shimlab image build"];
  if (w.kernels.length === 1) args.push(w.kernels[0] === "shimlab" ? "--kernel" : "--debian-kernel");
  if (w.layout !== "share") args.push(`--layout ${w.layout}`);
  if (path.resolve(w.cacheDir) !== DEFAULT_CACHE) args.push(`--cache-dir ${w.cacheDir}`);
  return args.join(" ");
}

function readManifest(file: string): ImageManifest | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as ImageManifest;
  } catch {
    return null;
  }
}

/** What differs between this shimlab's agent and the one an image holds, by file. */
function agentChanges(have: AgentIdentity, m: ImageManifest): string[] {
  const theirs = new Map((m.agent ?? []).map((f) => [f.dest, f.sha256]));
  return have.files.filter((f) => theirs.get(f.dest) !== f.sha256).map((f) => f.path);
}

/**
 * The manifest of a fresh image of the wanted kind, or the error a sandbox start fails with:
 * it says whether the image is missing or stale (and why) and names the command that builds it.
 */
export function findImage(w: ImageWanted): { manifest: ImageManifest } | { error: string } {
  const cmd = buildCommand(w);
  let agent: AgentIdentity;
  try {
    agent = agentIdentity(w.agent ? w.agent : agentFiles());
  } catch (e) {
    return { error: `no guest image can match this shimlab: ${(e as Error).message}` };
  }
  const variants: ImageVariant[] = w.kernels.flatMap((kernel) => (w.runc ? [true] : [false, true]).map((runc) => ({ kernel, layout: w.layout, runc })));
  const stale: string[] = [];
  for (const v of variants) {
    const m = readManifest(manifestPath(w.cacheDir, v, agent.id));
    if (!m) continue;
    const why = staleness(m);
    if (!why && w.crun && !m.inputs.some((i) => i.dest === GUEST_CRUN)) {
      stale.push(`the ${variantName(v)} image (built ${m.builtAt}) holds no crun, which guest_runtime = "crun" needs: install crun (apt-get install crun)`);
      continue;
    }
    if (!why) return { manifest: m };
    stale.push(`the ${variantName(v)} image (built ${m.builtAt}) is stale: ${why}`);
  }
  if (stale.length) return { error: `${stale.join("; ")}: run \`${cmd}\`` };
  // None for this agent: an image built for an earlier agent says what changed.
  const names = new Set(variants.map(variantName));
  let older: { m: ImageManifest; t: number } | null = null;
  try {
    for (const n of fs.readdirSync(manifestDir(w.cacheDir))) {
      const m = n.endsWith(".json") && names.has(n.slice(0, n.lastIndexOf("-"))) ? readManifest(path.join(manifestDir(w.cacheDir), n)) : null;
      const t = m ? Date.parse(m.builtAt) : NaN;
      if (m && !(older && older.t >= t)) older = { m, t };
    }
  } catch {
    /* no manifests at all */
  }
  const wanted = `guest_kernel = "${w.kernels.length > 1 ? "auto" : w.kernels[0]}", guest_usr = "${w.layout}"${w.crun ? ', guest_runtime = "crun"' : w.runc ? ', guest_runtime = "runc"' : ""}`;
  if (older) {
    const changed = agentChanges(agent, older.m);
    const why =
      older.m.imageFormat !== IMAGE_FORMAT
        ? `it was made by another version of the builder (image format ${older.m.imageFormat}, this shimlab's is ${IMAGE_FORMAT})`
        : `${changed.length ? changed.join(", ") : "the agent's files"} changed since it was built (${older.m.builtAt})`;
    return { error: `the guest image in ${w.cacheDir} (${wanted}) is stale: ${why}: run \`${cmd}\`` };
  }
  return { error: `no guest image in ${w.cacheDir} (${wanted}): run \`${cmd}\`` };
}
