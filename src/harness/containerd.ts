// A private containerd (Debian's 1.6) for tests and scenarios: its own root,
// state, sockets and config, shimlab's bin/ on its PATH, stopped afterwards.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { runCommand, type CommandResult } from "./shim-runner";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const SHIM_BINARY = path.join(REPO_ROOT, "bin", "containerd-shim-shimlab-v2");

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

  constructor(readonly o: ContainerdOptions = {}) {
    // Short: the address ends up hashed, but containerd's own sockets have the 108-byte limit.
    this.dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "ctd-"));
    this.root = path.join(this.dir, "root");
    this.state = path.join(this.dir, "state");
    this.address = path.join(this.dir, "c.sock");
    this.ttrpcAddress = this.address + ".ttrpc";
    this.configPath = path.join(this.dir, "config.toml");
    this.logPath = path.join(this.dir, "containerd.log");
  }

  config(): string {
    const disabled = this.o.cri ? [] : ['"io.containerd.grpc.v1.cri"'];
    return [
      "version = 2",
      `root = "${this.root}"`,
      `state = "${this.state}"`,
      `disabled_plugins = [${disabled.join(", ")}]`,
      "[grpc]",
      `  address = "${this.address}"`,
      "[ttrpc]",
      `  address = "${this.ttrpcAddress}"`,
      "[debug]",
      `  level = "${this.o.logLevel ?? "info"}"`,
      this.o.extraConfig ?? "",
    ].join("\n");
  }

  /** This instance's own cgroup parent and run dir, so that concurrent runs never see each other's containers. */
  get cgroupParent(): string {
    return `/shimlab-${path.basename(this.dir)}`;
  }

  env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { SHIMLAB_CGROUP_PARENT: this.cgroupParent, SHIMLAB_RUN_DIR: path.join(this.dir, "run"), ...process.env, ...this.o.env };
    env.PATH = `${this.o.shimBinDir ?? path.join(REPO_ROOT, "bin")}:${env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`;
    return env;
  }

  async start(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    fs.writeFileSync(this.configPath, this.config());
    await this.o.prepareConfig?.(this.configPath);
    const log = fs.openSync(this.logPath, "a");
    this.proc = spawn("containerd", ["--config", this.configPath], { env: this.env(), stdio: ["ignore", log, log], detached: true });
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

  /** Runs ctr against this containerd. */
  async ctr(args: string[], o: { namespace?: string; stdin?: Buffer; timeoutMs?: number; check?: boolean } = {}): Promise<CommandResult & { out: string; err: string }> {
    const r = await runCommand("ctr", ["--address", this.address, "--namespace", o.namespace ?? "default", ...args], {
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
