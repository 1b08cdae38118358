// `shimlab install`: put the shim on a node the way kata-deploy does. A
// launcher named containerd-shim-shimlab-v2 goes in <prefix>/bin (containerd
// finds it on PATH for `ctr --runtime io.containerd.shimlab.v2`, CRI through
// runtime_path), shimlab's config in <prefix>/share/shimlab, and a runtime
// `shimlab` in containerd's config.toml. A manifest records what was done so
// that `shimlab uninstall` undoes exactly that. Both are idempotent.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { addRuntime, removeRuntime, type RuntimeEntry } from "./containerd-config";

export const RUNTIME_TYPE = "io.containerd.shimlab.v2";
export const SHIM_NAME = "containerd-shim-shimlab-v2";
const LAUNCHER_MARK = "# shimlab launcher: installed by `shimlab install`";
const DEFAULT_CONFIG_MARK = "# shimlab configuration: written by `shimlab install`";

export interface InstallOptions {
  prefix: string;
  /** containerd's config.toml; created if missing. */
  containerdConfig: string;
  runtimeName?: string;
  /** shimlab's own TOML; a default one is written under the prefix if not given. */
  shimConfig?: string;
  /** The checkout whose dist/ the launcher runs. */
  repoRoot: string;
  /** Node to run it with. */
  node?: string;
  /** Config version for a missing/empty containerd config: 2 (1.6/1.7) or 3 (2.x); default from `containerd --version`. */
  emptyConfigVersion?: number;
  podAnnotations?: string[];
}

export interface Manifest {
  version: 1;
  launcher: string;
  containerdConfig: string;
  backup: string | null;
  runtimeName: string;
  shimConfig: string;
  /** Whether install wrote shimConfig (and so uninstall may remove it). */
  shimConfigWritten: boolean;
}

export interface Step {
  what: string;
  changed: boolean;
}

export function manifestPath(prefix: string): string {
  return path.join(prefix, "share", "shimlab", "install.json");
}

export function launcherText(node: string, repoRoot: string): string {
  const main = path.join(repoRoot, "dist", "shim", "main.js");
  // env -u: a CA bundle in containerd's environment would cost every start ~40 ms.
  return [
    `#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS ${node}`,
    `${LAUNCHER_MARK.replace("#", "//")} from ${repoRoot}`,
    `require(${JSON.stringify(main)}).main(process.argv.slice(2));`,
    "",
  ].join("\n");
}

export const DEFAULT_SHIM_CONFIG = `${DEFAULT_CONFIG_MARK}
# The agent runs containers with runc when it can, else as host processes.
hypervisor = "none"

[agent]
runtime = "auto"
`;

function writeIfDifferent(file: string, text: string, mode: number): boolean {
  try {
    if (fs.readFileSync(file, "utf8") === text) {
      fs.chmodSync(file, mode);
      return false;
    }
  } catch {
    /* absent */
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.shimlab-tmp`;
  fs.writeFileSync(tmp, text, { mode });
  fs.renameSync(tmp, file);
  return true;
}

/** The config version containerd on this machine expects: 3 for 2.x, else 2. */
export function detectConfigVersion(): number {
  try {
    const out = execFileSync("containerd", ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5_000 });
    const m = /\s v?(\d+)\.(\d+)/.exec(out);
    if (m && Number(m[1]) >= 2) return 3;
  } catch {
    /* no containerd here: the common case for 1.6/1.7 nodes' configs */
  }
  return 2;
}

export function install(o: InstallOptions): { steps: Step[]; manifest: Manifest } {
  const prefix = path.resolve(o.prefix);
  const node = o.node ?? process.execPath;
  const mainJs = path.join(o.repoRoot, "dist", "shim", "main.js");
  if (!fs.existsSync(mainJs)) throw new Error(`${mainJs} is missing: run \`npm run build\` in ${o.repoRoot} first`);
  const steps: Step[] = [];
  const launcher = path.join(prefix, "bin", SHIM_NAME);
  if (fs.existsSync(launcher) && !fs.readFileSync(launcher, "utf8").includes(LAUNCHER_MARK.slice(2))) {
    throw new Error(`${launcher} exists and is not a shimlab launcher; not overwriting it`);
  }
  const shimConfig = o.shimConfig ? path.resolve(o.shimConfig) : path.join(prefix, "share", "shimlab", "config.toml");
  if (o.shimConfig && !fs.existsSync(shimConfig)) throw new Error(`shimlab config ${shimConfig} does not exist`);

  // The containerd edit is worked out (and checked) before anything is written.
  const cfgPath = path.resolve(o.containerdConfig);
  const old = fs.existsSync(cfgPath) ? fs.readFileSync(cfgPath, "utf8") : "";
  const entry: RuntimeEntry = {
    name: o.runtimeName ?? "shimlab",
    runtimeType: RUNTIME_TYPE,
    runtimePath: launcher,
    configPath: shimConfig,
    podAnnotations: o.podAnnotations,
  };
  const edit = addRuntime(old, entry, o.emptyConfigVersion ?? (old.trim() ? 2 : detectConfigVersion()));

  steps.push({ what: `launcher ${launcher}`, changed: writeIfDifferent(launcher, launcherText(node, o.repoRoot), 0o755) });
  let shimConfigWritten = false;
  if (!o.shimConfig) {
    const existing = fs.existsSync(shimConfig) ? fs.readFileSync(shimConfig, "utf8") : null;
    if (existing === null || existing === DEFAULT_SHIM_CONFIG) {
      steps.push({ what: `shimlab config ${shimConfig}`, changed: writeIfDifferent(shimConfig, DEFAULT_SHIM_CONFIG, 0o644) });
      shimConfigWritten = true;
    } else steps.push({ what: `shimlab config ${shimConfig} (kept: edited by hand)`, changed: false });
  }
  const prior = readManifest(prefix);
  let backup: string | null = prior?.containerdConfig === cfgPath ? prior.backup : null;
  if (edit.changed) {
    if (fs.existsSync(cfgPath)) {
      backup = `${cfgPath}.shimlab-backup`;
      // The first backup is the one worth keeping: the config before shimlab.
      if (!fs.existsSync(backup)) fs.copyFileSync(cfgPath, backup);
    }
    const mode = fs.existsSync(cfgPath) ? fs.statSync(cfgPath).mode & 0o777 : 0o644;
    writeIfDifferent(cfgPath, edit.text, mode);
  }
  steps.push({ what: `runtime ${entry.name} in ${cfgPath} (config version ${edit.version})`, changed: edit.changed });

  const manifest: Manifest = {
    version: 1,
    launcher,
    containerdConfig: cfgPath,
    backup,
    runtimeName: entry.name,
    shimConfig,
    shimConfigWritten: shimConfigWritten || (prior?.shimConfigWritten === true && prior.shimConfig === shimConfig),
  };
  steps.push({ what: `manifest ${manifestPath(prefix)}`, changed: writeIfDifferent(manifestPath(prefix), JSON.stringify(manifest, null, 2) + "\n", 0o644) });
  return { steps, manifest };
}

export function readManifest(prefix: string): Manifest | null {
  try {
    return JSON.parse(fs.readFileSync(manifestPath(path.resolve(prefix)), "utf8")) as Manifest;
  } catch {
    return null;
  }
}

export function uninstall(o: { prefix: string; containerdConfig?: string }): Step[] {
  const prefix = path.resolve(o.prefix);
  const m = readManifest(prefix);
  const steps: Step[] = [];
  const cfgPath = path.resolve(o.containerdConfig ?? m?.containerdConfig ?? "/etc/containerd/config.toml");
  if (fs.existsSync(cfgPath)) {
    const edit = removeRuntime(fs.readFileSync(cfgPath, "utf8"));
    if (edit.changed) fs.writeFileSync(cfgPath, edit.text);
    steps.push({ what: `runtime block in ${cfgPath}`, changed: edit.changed });
  }
  // The backup stays until the config is back to what it held: then it is redundant.
  const backup = m?.backup;
  if (backup && fs.existsSync(backup) && fs.existsSync(cfgPath) && fs.readFileSync(backup, "utf8") === fs.readFileSync(cfgPath, "utf8")) {
    fs.rmSync(backup);
    steps.push({ what: `backup ${backup} (identical to the restored config)`, changed: true });
  }
  const launcher = m?.launcher ?? path.join(prefix, "bin", SHIM_NAME);
  if (fs.existsSync(launcher)) {
    if (!fs.readFileSync(launcher, "utf8").includes(LAUNCHER_MARK.slice(2))) throw new Error(`${launcher} is not a shimlab launcher; not removing it`);
    fs.rmSync(launcher);
    steps.push({ what: `launcher ${launcher}`, changed: true });
  }
  if (m?.shimConfigWritten && fs.existsSync(m.shimConfig)) {
    if (fs.readFileSync(m.shimConfig, "utf8") === DEFAULT_SHIM_CONFIG) {
      fs.rmSync(m.shimConfig);
      steps.push({ what: `shimlab config ${m.shimConfig}`, changed: true });
    } else steps.push({ what: `shimlab config ${m.shimConfig} (kept: edited by hand)`, changed: false });
  }
  if (m) {
    fs.rmSync(manifestPath(prefix), { force: true });
    steps.push({ what: `manifest ${manifestPath(prefix)}`, changed: true });
    const dir = path.dirname(manifestPath(prefix));
    if (fs.existsSync(dir) && !fs.readdirSync(dir).length) fs.rmdirSync(dir);
  }
  return steps;
}

/** `systemctl restart containerd`, for --restart. */
export function restartContainerd(): void {
  try {
    execFileSync("systemctl", ["restart", "containerd"], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`systemctl restart containerd failed: ${err.stderr?.toString().trim() || err.message}`);
  }
}
