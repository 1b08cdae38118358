// A private containerd for tests and scenarios: its own root, state, sockets
// and config, shimlab's bin/ on its PATH, stopped afterwards. Which containerd
// (Debian 12's 1.6, trixie's 1.7, sid's 2.1, or a path) comes from
// SHIMLAB_CONTAINERD unless the caller names a peer; each reads its own config
// version (2 for 1.x, 3 for 2.x) and finds the runc shim and runc of its own
// package first on its PATH.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { runCommand, type CommandResult } from "./shim-runner";
import { currentContainerd, type ContainerdPeer } from "./peers/containerd";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const SHIM_BINARY = path.join(REPO_ROOT, "bin", "containerd-shim-shimlab-v2");
/** The failpoint shim (src/fp-shim): the same shim with fault injection, for tests and scenarios. */
export const FP_SHIM_BINARY = path.join(REPO_ROOT, "bin", "containerd-shim-shimlab-fp-v2");

export interface ContainerdOptions {
  /** Enable the CRI plugin (off by default: it wants CNI and is slower to start). */
  cri?: boolean;
  /** Extra TOML appended to the config. */
  extraConfig?: string;
  /** Environment for containerd (and so for every shim it starts). */
  env?: NodeJS.ProcessEnv;
  logLevel?: "info" | "debug";
  /** Use this directory instead of a fresh temporary one. */
  dir?: string;
  /** Put this directory first on containerd's PATH instead of the checkout's bin/ (an installed shim). */
  shimBinDir?: string;
  /** Runs on the written config before containerd starts (e.g. `shimlab install` editing it). */
  prepareConfig?: (configPath: string) => void | Promise<void>;
  /** Which containerd; SHIMLAB_CONTAINERD's (Debian 12's 1.6 by default) when absent. */
  peer?: ContainerdPeer;
  /** The config's plugin sections, made once the peer (and so the config version) is known. */
  pluginConfig?: (peer: ContainerdPeer) => string;
}

export class Containerd {
  readonly dir: string;
  readonly root: string;
  readonly state: string;
  readonly address: string;
  readonly ttrpcAddress: string;
  readonly configPath: string;
  readonly logPath: string;
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private resolvedPeer: ContainerdPeer | null;

  constructor(readonly o: ContainerdOptions = {}) {
    // Short: the address ends up hashed, but containerd's own sockets have the 108-byte limit.
    this.dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "ctd-"));
    this.root = path.join(this.dir, "root");
    this.state = path.join(this.dir, "state");
    this.address = path.join(this.dir, "c.sock");
    this.ttrpcAddress = this.address + ".ttrpc";
    this.configPath = path.join(this.dir, "config.toml");
    this.logPath = path.join(this.dir, "containerd.log");
    this.resolvedPeer = o.peer ?? null;
  }

  /** The containerd this instance runs (known once start() or resolvePeer() has run). */
  get peer(): ContainerdPeer {
    if (!this.resolvedPeer) throw new Error("Containerd.peer is known only after start() or resolvePeer()");
    return this.resolvedPeer;
  }

  async resolvePeer(): Promise<ContainerdPeer> {
    this.resolvedPeer ??= await currentContainerd();
    return this.resolvedPeer;
  }

  config(): string {
    const peer = this.peer;
    const v3 = peer.configVersion === 3;
    const q = (s: string) => (v3 ? `'${s}'` : `"${s}"`);
    // 1.x's CRI is one plugin; 2.x split it in three.
    const cri = v3 ? ["io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.grpc.v1.cri"] : ["io.containerd.grpc.v1.cri"];
    // 2.x enables NRI, whose socket (/var/run/nri/nri.sock) every private containerd would fight over.
    const disabled = [...(this.o.cri ? [] : cri), ...(peer.major >= 2 || (peer.major === 1 && peer.minor >= 7) ? ["io.containerd.nri.v1.nri"] : [])];
    return [
      `version = ${peer.configVersion}`,
      `root = "${this.root}"`,
      `state = "${this.state}"`,
      `disabled_plugins = [${disabled.map(q).join(", ")}]`,
      "[grpc]",
      `  address = "${this.address}"`,
      "[ttrpc]",
      `  address = "${this.ttrpcAddress}"`,
      "[debug]",
      `  level = "${this.o.logLevel ?? "info"}"`,
      this.o.pluginConfig?.(peer) ?? "",
      this.o.extraConfig ?? "",
    ].join("\n");
  }

  /** This instance's own cgroup parent and run dir, so that concurrent runs never see each other's containers. */
  get cgroupParent(): string {
    return `/shimlab-${path.basename(this.dir)}`;
  }

  env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { SHIMLAB_CGROUP_PARENT: this.cgroupParent, SHIMLAB_RUN_DIR: path.join(this.dir, "run"), ...process.env, ...this.o.env };
    // shimlab's shim, then this containerd's own ctr, runc shim and runc, then the rest.
    const peerBin = this.resolvedPeer ? [this.resolvedPeer.binDir] : [];
    // SHIMLAB_TEST_SHIM_BIN_DIR: another containerd-shim-shimlab-v2 for a whole test run (another build, a wrapper)
    env.PATH = [this.o.shimBinDir ?? (process.env.SHIMLAB_TEST_SHIM_BIN_DIR || path.join(REPO_ROOT, "bin")), ...peerBin, env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"].join(":");
    return env;
  }

  async start(): Promise<void> {
    await this.resolvePeer();
    fs.mkdirSync(this.dir, { recursive: true });
    fs.writeFileSync(this.configPath, this.config());
    await this.o.prepareConfig?.(this.configPath);
    const log = fs.openSync(this.logPath, "a");
    this.proc = spawn(this.peer.containerd, ["--config", this.configPath], { env: this.env(), stdio: ["ignore", log, log], detached: true });
    fs.closeSync(log);
    const p = this.proc;
    this.exited = new Promise((r) => p.once("exit", () => r()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`containerd exited at start (code ${p.exitCode}); log:\n${this.logTail()}`);
      if (fs.existsSync(this.address)) {
        const r = await this.ctr(["version"], { check: false });
        if (r.code === 0) return;
      }
      if (Date.now() > deadline) throw new Error(`containerd did not come up in 20 s; log:\n${this.logTail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  logTail(lines = 40): string {
    try {
      return fs.readFileSync(this.logPath, "utf8").trim().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /**
   * ctr's subcommand arguments as this containerd's tests run them: a `ctr run` on runc's shim
   * gets this containerd's own runc root. runc's shim defaults to /run/containerd/runc/<namespace>
   * whatever containerd's --root and --state say, so two copies of a suite (or two containerds)
   * running a container of the same id in the same namespace would meet there ("container with
   * given ID already exists").
   */
  ctrArgs(args: string[]): string[] {
    if (args[0] !== "run" || args.includes("--runc-root")) return args;
    const i = args.indexOf("--runtime");
    const runtime = i >= 0 ? args[i + 1] : "io.containerd.runc.v2";
    return runtime === "io.containerd.runc.v2" ? ["run", "--runc-root", path.join(this.dir, "runc"), ...args.slice(1)] : args;
  }

  /** Runs ctr against this containerd. */
  async ctr(args: string[], o: { namespace?: string; stdin?: Buffer; timeoutMs?: number; check?: boolean } = {}): Promise<CommandResult & { out: string; err: string }> {
    const r = await runCommand(this.resolvedPeer?.ctr ?? "ctr", ["--address", this.address, "--namespace", o.namespace ?? "default", ...this.ctrArgs(args)], {
      env: this.env(),
      stdin: o.stdin,
      timeoutMs: o.timeoutMs ?? 60_000,
    });
    const res = { ...r, out: r.stdout.toString(), err: r.stderr.toString() };
    if (o.check && r.code !== 0) throw new Error(`ctr ${args.join(" ")} failed (${r.code}): ${res.err || res.out}`);
    return res;
  }

  /** SIGKILL, as a crash would (the shims stay). */
  async kill(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill("SIGKILL");
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGTERM");
      const t = setTimeout(() => this.proc?.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(t);
    }
    this.proc = null;
  }

  /** Stops containerd and removes its directories (unmounting anything left in them first). */
  async destroy(): Promise<void> {
    await this.stop();
    // SHIMLAB_KEEP_LOGS=<dir>: containerd's log (with every shim's log in it) outlives the run, for a failure seen once.
    const keep = process.env.SHIMLAB_KEEP_LOGS;
    if (keep) {
      fs.mkdirSync(keep, { recursive: true });
      fs.copyFileSync(this.logPath, path.join(keep, `${path.basename(this.dir)}-containerd.log`));
    }
    await unmountUnder(this.dir);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function unmountUnder(dir: string): Promise<string[]> {
  const mounts = fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m && (m === dir || m.startsWith(dir + "/")))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await runCommand("umount", ["-l", m.replace(/\\040/g, " ")]).catch(() => undefined);
  return mounts;
}
