// `shimlab install`: put the shim on a node the way kata-deploy does. A
// launcher named containerd-shim-shimlab-v2 goes in <prefix>/bin (containerd
// finds it on PATH for `ctr --runtime io.containerd.shimlab.v2`, CRI through
// runtime_path), shimlab's config in <prefix>/share/shimlab, and a runtime
// `shimlab` in containerd's config.toml. A manifest records what was done so
// that `shimlab uninstall` undoes exactly that. Both are idempotent.
//
// By default the launcher runs this checkout's build with this Node. With
// `copy`, Node and the build are copied to <prefix>/lib/shimlab first, so the
// node needs nothing else (the DaemonSet's way). With `root`, every file goes
// under that directory (the host's / mounted in a container) while the paths
// written into configs stay the host's.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { addRuntime, removeRuntime, type RuntimeEntry, type Sandboxer } from "./containerd-config";

export const RUNTIME_TYPE = "io.containerd.shimlab.v2";
export const SHIM_NAME = "containerd-shim-shimlab-v2";
/**
 * The launcher of a `sandboxer = "shim"` runtime: the same shim with shimlab's
 * config in its environment. containerd 2.1 cannot take the config as the
 * runtime's options there: CRI adds the pod's task address to every task's
 * options as runc's (containerd.runc.v1.Options, client/task_opts.go
 * WithTaskAPIEndpoint), and a runtimeoptions.v1.Options table fails each
 * container's start ("can't unmarshal type runtimeoptions.v1.Options"). And
 * the shim sandbox controller starts the pod's shim by runtime_type alone
 * (runtime_path is for tasks), so the runtime names this file by its path.
 */
export const SANDBOXER_SHIM_NAME = "containerd-shim-shimlab-sandboxer-v2";
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
  /** Copy Node and the build under <prefix>/lib/shimlab instead of pointing at the checkout. */
  copy?: boolean;
  /** The host's root as mounted here; paths in configs are written as seen from the host. Default "/". */
  root?: string;
  /**
   * containerd 2.x: who makes the runtime's pods. "podsandbox" (CRI's pause container, grouped onto
   * the pod's shim by annotations) or "shim" (no pause container: the shim's Sandbox API). Absent:
   * no `sandboxer` key, which containerd 2.x reads as podsandbox; 1.6/1.7 have no such choice.
   */
  sandboxer?: Sandboxer;
}

export interface Manifest {
  version: 1;
  launcher: string;
  /** The copied runtime (Node and the build), when installed with copy. */
  lib?: string;
  containerdConfig: string;
  backup: string | null;
  runtimeName: string;
  shimConfig: string;
  /** Whether install wrote shimConfig (and so uninstall may remove it). */
  shimConfigWritten: boolean;
  /** The `sandboxer = "shim"` runtime's launcher, when installed so. */
  sandboxerLauncher?: string;
}

export interface Step {
  what: string;
  changed: boolean;
}

export function manifestPath(prefix: string): string {
  return path.join(prefix, "share", "shimlab", "install.json");
}

/**
 * The installed shim: a sh script that runs the checkout's native launcher (bin/containerd-shim-shimlab-v2,
 * native/oneshot.c: `start` and `delete` without Node, the daemon on the bundle) with this Node named,
 * for containerd's PATH may have none. A build without the native launcher runs the Node shim itself.
 */
export function launcherText(node: string, repoRoot: string, env: Record<string, string> = {}, note = ""): string {
  const native = path.join(repoRoot, "bin", SHIM_NAME);
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const vars = Object.entries(env).map(([k, v]) => `${k}=${q(v)} `).join("");
  const run = isNativeLauncher(native)
    ? `SHIMLAB_NODE=${q(node)} ${vars}exec ${q(native)} "$@"`
    : // env -u: a CA bundle in containerd's environment would cost every start ~40 ms.
      `${vars}exec env -u NODE_EXTRA_CA_CERTS ${q(node)} ${q(path.join(repoRoot, "bin", `${SHIM_NAME}.js`))} "$@"`;
  return ["#!/bin/sh", `${LAUNCHER_MARK} from ${repoRoot}${note}`, run, ""].join("\n");
}

/** The shim-sandboxer launcher: the shim with shimlab's config set, whatever containerd's environment says. */
export function sandboxerLauncherText(node: string, repoRoot: string, shimConfig: string): string {
  // containerd 2.1 cannot pass a shim-sandboxer runtime its options: the config goes in the environment.
  return launcherText(node, repoRoot, { SHIMLAB_CONFIG: shimConfig }, ', for sandboxer = "shim"');
}

/** Whether file is the compiled launcher (an ELF), not the Node script or a missing build. */
function isNativeLauncher(file: string): boolean {
  try {
    const fd = fs.openSync(file, "r");
    try {
      const b = Buffer.alloc(4);
      return fs.readSync(fd, b, 0, 4, 0) === 4 && b.toString("latin1") === "\x7fELF";
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

function isLauncher(file: string): boolean {
  return fs.readFileSync(file, "utf8").includes(LAUNCHER_MARK.slice(2));
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
  if (fs.lstatSync(file, { throwIfNoEntry: false })?.isSymbolicLink()) {
    // A config managed elsewhere and linked here: write through the link, never replace it.
    fs.writeFileSync(file, text);
    return true;
  }
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

/** Maps a host path to where it is reachable from here. */
export function underRoot(root: string | undefined): (p: string) => string {
  const r = path.resolve(root ?? "/");
  return (p) => (r === "/" ? p : path.join(r, p));
}

export function install(o: InstallOptions): { steps: Step[]; manifest: Manifest } {
  const at = underRoot(o.root);
  const prefix = path.resolve(o.prefix);
  const mainJs = path.join(o.repoRoot, "dist", "shim", "main.js");
  if (!fs.existsSync(mainJs)) throw new Error(`${mainJs} is missing: run \`npm run build\` in ${o.repoRoot} first`);
  if (!fs.existsSync(path.join(o.repoRoot, "bin", `${SHIM_NAME}.js`))) throw new Error(`${o.repoRoot} has no bin/${SHIM_NAME}.js: not a shimlab checkout`);
  const steps: Step[] = [];
  const launcher = path.join(prefix, "bin", SHIM_NAME);
  const sandboxerLauncher = path.join(prefix, "bin", SANDBOXER_SHIM_NAME);
  for (const l of [launcher, sandboxerLauncher]) {
    if (fs.existsSync(at(l)) && !isLauncher(at(l))) throw new Error(`${at(l)} exists and is not a shimlab launcher; not overwriting it`);
  }
  const shimSandboxer = o.sandboxer === "shim";
  const shimConfig = o.shimConfig ? path.resolve(o.shimConfig) : path.join(prefix, "share", "shimlab", "config.toml");
  if (o.shimConfig && !fs.existsSync(at(shimConfig))) throw new Error(`shimlab config ${at(shimConfig)} does not exist`);

  // The containerd edit is worked out (and checked) before anything is written.
  const cfgPath = path.resolve(o.containerdConfig);
  const old = fs.existsSync(at(cfgPath)) ? fs.readFileSync(at(cfgPath), "utf8") : "";
  const entry: RuntimeEntry = shimSandboxer
    ? // No options table and no runtime_path: see SANDBOXER_SHIM_NAME.
      { name: o.runtimeName ?? "shimlab", runtimeType: sandboxerLauncher, sandboxer: "shim", podAnnotations: o.podAnnotations }
    : {
        name: o.runtimeName ?? "shimlab",
        runtimeType: RUNTIME_TYPE,
        runtimePath: launcher,
        configPath: shimConfig,
        podAnnotations: o.podAnnotations,
        sandboxer: o.sandboxer,
      };
  const edit = addRuntime(old, entry, o.emptyConfigVersion ?? (old.trim() ? 2 : detectConfigVersion()));

  let node = o.node ?? process.execPath;
  let repo = o.repoRoot;
  let lib: string | undefined;
  if (o.copy) {
    lib = path.join(prefix, "lib", "shimlab");
    steps.push({ what: `Node and shimlab's build in ${lib}`, changed: copyRuntime(o.repoRoot, o.node ?? process.execPath, at(lib)) });
    node = path.join(lib, "node");
    repo = lib;
  }
  steps.push({ what: `launcher ${launcher}`, changed: writeIfDifferent(at(launcher), launcherText(node, repo), 0o755) });
  if (shimSandboxer) {
    steps.push({ what: `launcher ${sandboxerLauncher} (sandboxer = "shim")`, changed: writeIfDifferent(at(sandboxerLauncher), sandboxerLauncherText(node, repo, shimConfig), 0o755) });
  } else if (fs.existsSync(at(sandboxerLauncher))) {
    // Installed with --sandboxer shim before: the runtime no longer names it.
    fs.rmSync(at(sandboxerLauncher));
    steps.push({ what: `launcher ${sandboxerLauncher} (no longer used)`, changed: true });
  }
  let shimConfigWritten = false;
  if (!o.shimConfig) {
    const existing = fs.existsSync(at(shimConfig)) ? fs.readFileSync(at(shimConfig), "utf8") : null;
    if (existing === null || existing === DEFAULT_SHIM_CONFIG) {
      steps.push({ what: `shimlab config ${shimConfig}`, changed: writeIfDifferent(at(shimConfig), DEFAULT_SHIM_CONFIG, 0o644) });
      shimConfigWritten = true;
    } else steps.push({ what: `shimlab config ${shimConfig} (kept: edited by hand)`, changed: false });
  }
  const prior = readManifest(prefix, o.root);
  let backup: string | null = prior?.containerdConfig === cfgPath ? prior.backup : null;
  if (edit.changed) {
    if (fs.existsSync(at(cfgPath))) {
      backup = `${cfgPath}.shimlab-backup`;
      // The first backup is the one worth keeping: the config before shimlab.
      if (!fs.existsSync(at(backup))) fs.copyFileSync(at(cfgPath), at(backup));
    }
    const mode = fs.existsSync(at(cfgPath)) ? fs.statSync(at(cfgPath)).mode & 0o777 : 0o644;
    writeIfDifferent(at(cfgPath), edit.text, mode);
  }
  steps.push({ what: `runtime ${entry.name} in ${cfgPath} (config version ${edit.version})`, changed: edit.changed });

  const manifest: Manifest = {
    version: 1,
    launcher,
    ...(lib ? { lib } : {}),
    containerdConfig: cfgPath,
    backup,
    runtimeName: entry.name,
    shimConfig,
    shimConfigWritten: shimConfigWritten || (prior?.shimConfigWritten === true && prior.shimConfig === shimConfig),
    ...(shimSandboxer ? { sandboxerLauncher } : {}),
  };
  steps.push({ what: `manifest ${manifestPath(prefix)}`, changed: writeIfDifferent(at(manifestPath(prefix)), JSON.stringify(manifest, null, 2) + "\n", 0o644) });
  return { steps, manifest };
}

/**
 * What a copied install needs at run time: the build, the addon, production node_modules, and Node
 * itself; and docs/, since every rule shimlab prints cites docs/contract/<page>.md (dist/docs has the HTML).
 * bin/: the native launcher and the Node shim it hands unusual cases to, beside dist/ as in the checkout.
 */
const COPIED = ["package.json", path.join("bin", SHIM_NAME), path.join("bin", `${SHIM_NAME}.js`), "dist", path.join("native", "build"), "node_modules", "kernel", "docs"];

/**
 * What changes when a copied path's content does. A directory's own mtime moves only when entries
 * are added or removed, not when a file in it is rewritten (a rebuild, an edited doc), so a tree is
 * stamped by its newest file and its file count. node_modules is too big to walk on every install:
 * npm rewrites node_modules/.package-lock.json whenever it changes the tree.
 */
function contentStamp(src: string, rel: string): string {
  if (!fs.existsSync(src)) return "absent";
  if (rel === "node_modules") {
    const lock = path.join(src, ".package-lock.json");
    return String(fs.statSync(fs.existsSync(lock) ? lock : src).mtimeMs);
  }
  let newest = 0;
  let files = 0;
  const walk = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    else {
      files++;
      newest = Math.max(newest, st.mtimeMs);
    }
  };
  walk(src);
  return `${newest}/${files}`;
}

function copyRuntime(repoRoot: string, node: string, dest: string): boolean {
  const stamp = path.join(dest, ".stamp");
  // One line that changes whenever anything copied would: skip the copy when it matches.
  const want = COPIED.map((p) => `${p}:${contentStamp(path.join(repoRoot, p), p)}`)
    .concat(`node:${fs.statSync(node).mtimeMs}:${fs.statSync(node).size}`)
    .join(" ");
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === want) return false;
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  for (const p of COPIED) {
    const src = path.join(repoRoot, p);
    // Timestamps kept: the launcher runs the bundle only when it is newer than dist/.tsbuildinfo.
    if (fs.existsSync(src)) fs.cpSync(src, path.join(dest, p), { recursive: true, dereference: true, preserveTimestamps: true });
  }
  fs.copyFileSync(node, path.join(dest, "node"));
  fs.chmodSync(path.join(dest, "node"), 0o755);
  fs.writeFileSync(stamp, want);
  return true;
}

export function readManifest(prefix: string, root?: string): Manifest | null {
  try {
    return JSON.parse(fs.readFileSync(underRoot(root)(manifestPath(path.resolve(prefix))), "utf8")) as Manifest;
  } catch {
    return null;
  }
}

export function uninstall(o: { prefix: string; containerdConfig?: string; root?: string }): Step[] {
  const at = underRoot(o.root);
  const prefix = path.resolve(o.prefix);
  const m = readManifest(prefix, o.root);
  const steps: Step[] = [];
  const cfgPath = path.resolve(o.containerdConfig ?? m?.containerdConfig ?? "/etc/containerd/config.toml");
  if (fs.existsSync(at(cfgPath))) {
    const edit = removeRuntime(fs.readFileSync(at(cfgPath), "utf8"));
    if (edit.changed) writeIfDifferent(at(cfgPath), edit.text, fs.statSync(at(cfgPath)).mode & 0o777);
    steps.push({ what: `runtime block in ${cfgPath}`, changed: edit.changed });
  }
  // The backup stays until the config is back to what it held: then it is redundant.
  const backup = m?.backup;
  if (backup && fs.existsSync(at(backup)) && fs.existsSync(at(cfgPath)) && fs.readFileSync(at(backup), "utf8") === fs.readFileSync(at(cfgPath), "utf8")) {
    fs.rmSync(at(backup));
    steps.push({ what: `backup ${backup} (identical to the restored config)`, changed: true });
  }
  const launchers = [m?.launcher ?? path.join(prefix, "bin", SHIM_NAME), m?.sandboxerLauncher ?? path.join(prefix, "bin", SANDBOXER_SHIM_NAME)];
  for (const launcher of launchers) {
    if (!fs.existsSync(at(launcher))) continue;
    if (!isLauncher(at(launcher))) throw new Error(`${at(launcher)} is not a shimlab launcher; not removing it`);
    fs.rmSync(at(launcher));
    steps.push({ what: `launcher ${launcher}`, changed: true });
  }
  if (m?.lib && fs.existsSync(at(path.join(m.lib, ".stamp")))) {
    fs.rmSync(at(m.lib), { recursive: true, force: true });
    steps.push({ what: `Node and shimlab's build in ${m.lib}`, changed: true });
  }
  if (m?.shimConfigWritten && fs.existsSync(at(m.shimConfig))) {
    if (fs.readFileSync(at(m.shimConfig), "utf8") === DEFAULT_SHIM_CONFIG) {
      fs.rmSync(at(m.shimConfig));
      steps.push({ what: `shimlab config ${m.shimConfig}`, changed: true });
    } else steps.push({ what: `shimlab config ${m.shimConfig} (kept: edited by hand)`, changed: false });
  }
  if (m) {
    fs.rmSync(at(manifestPath(prefix)), { force: true });
    steps.push({ what: `manifest ${manifestPath(prefix)}`, changed: true });
    const dir = at(path.dirname(manifestPath(prefix)));
    if (fs.existsSync(dir) && !fs.readdirSync(dir).length) fs.rmdirSync(dir);
  }
  return steps;
}

/**
 * `systemctl restart containerd`, for --restart. From a container whose
 * `root` is the host's (hostPID), systemctl runs in the host's namespaces.
 */
export function restartContainerd(root?: string): void {
  const onHost = path.resolve(root ?? "/") !== "/";
  const [cmd, args] = onHost ? ["nsenter", ["--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--", "systemctl", "restart", "containerd"]] : ["systemctl", ["restart", "containerd"]];
  try {
    execFileSync(cmd, args as string[], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`systemctl restart containerd failed: ${err.stderr?.toString().trim() || err.message}`);
  }
}
