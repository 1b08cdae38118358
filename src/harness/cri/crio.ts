// A private CRI-O: its own root, runroot, socket, registries and storage
// configuration (crio-config.ts), started and stopped by the caller, with
// shimlab's handlers beside runc. CRI-O hands its environment to the shims it
// starts, so SHIMLAB_CGROUP_PARENT and SHIMLAB_RUN_DIR keep them inside this
// instance's directory and cgroup, as Containerd does for containerd's.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { CriClient } from "./client";
import { removeCniBridge, type CniNetwork } from "./cni";
import { writeCrioConfig, type CrioConfigOptions, type CrioFiles } from "./crio-config";
import { unmountUnder, REPO_ROOT } from "../containerd";
import { listProcesses, type ProcInfo } from "../leaks";
import { runCommand } from "../shim-runner";
import { cgroupExists, removeCgroupTree } from "../../util/cgroup";
import type { CrioPeer } from "../peers/crio";

export interface CrioOptions extends Omit<CrioConfigOptions, "dir"> {
  dir?: string;
  env?: NodeJS.ProcessEnv;
}

function processEnvHas(pid: number, entry: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(entry);
  } catch {
    return false;
  }
}

export class Crio {
  readonly dir: string;
  readonly files: CrioFiles;
  readonly cri: CriClient;
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private crioCgroupExisted = true;

  constructor(private readonly o: CrioOptions) {
    // Short: socket paths (conmon's attach sockets among them) live under it.
    this.dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "crio-"));
    this.files = writeCrioConfig({ ...o, dir: this.dir });
    this.cri = new CriClient(this.files.socket);
  }

  get peer(): CrioPeer {
    return this.o.peer;
  }
  get socket(): string {
    return this.files.socket;
  }
  get logPath(): string {
    return path.join(this.dir, "crio.log");
  }
  get pid(): number | undefined {
    return this.proc?.pid;
  }
  /** Where this instance's pods' cgroups go when the pod names none (critest's), and the shims' own. */
  get cgroupParent(): string {
    return `/shimlab-${path.basename(this.dir)}`;
  }

  env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      SHIMLAB_CGROUP_PARENT: this.cgroupParent,
      SHIMLAB_RUN_DIR: path.join(this.dir, "shimlab-run"),
      CONTAINERS_STORAGE_CONF: this.files.storageConf,
      PATH: [path.join(REPO_ROOT, "bin"), process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"].join(":"),
      ...this.o.env,
    };
  }

  async start(): Promise<void> {
    this.crioCgroupExisted = cgroupExists("/crio");
    const log = fs.openSync(this.logPath, "a");
    // An empty drop-in directory: never the host's /etc/crio/crio.conf.d.
    const confD = path.join(this.dir, "crio.conf.d");
    fs.mkdirSync(confD, { recursive: true });
    // The registries file by flag: CRI-O sets containers/image's path itself, so the environment is not read.
    const regD = path.join(this.dir, "registries.conf.d");
    fs.mkdirSync(regD, { recursive: true });
    const args = ["--config", this.files.config, "--config-dir", confD, "--registries-conf", this.files.registriesConf, "--registries-conf-dir", regD];
    this.proc = spawn(this.o.peer.crio, args, { env: this.env(), stdio: ["ignore", log, log], detached: true });
    fs.closeSync(log);
    const p = this.proc;
    this.exited = new Promise((r) => p.once("exit", () => r()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`crio exited at start (code ${p.exitCode}); log:\n${this.logTail()}`);
      if (fs.existsSync(this.socket)) {
        const ok = await this.cri.runtime.Version({}, { timeoutMs: 2000 }).then(
          () => true,
          () => false,
        );
        if (ok) return;
      }
      if (Date.now() > deadline) throw new Error(`crio did not answer in 30 s; log:\n${this.logTail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** How CRI-O ended, when it ended before stop(): its exit code or signal and its log's tail; null while it runs. */
  death(lines = 60): string | null {
    const p = this.proc;
    if (!p || (p.exitCode === null && p.signalCode === null)) return null;
    return `crio ${p.pid} ended (${p.signalCode ? `signal ${p.signalCode}` : `exit code ${p.exitCode}`}); its log's last ${lines} lines:\n${this.logTail(lines)}`;
  }

  logTail(lines = 40): string {
    try {
      return fs.readFileSync(this.logPath, "utf8").trim().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** Containers, conmons and shims of this instance still running (after a crash or a failed test). */
  leftovers(): ProcInfo[] {
    const ids = this.containerIds();
    const inOurCgroup = (pid: number) => {
      let cg = "";
      try {
        cg = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8");
      } catch {
        return false;
      }
      return cg.includes(`:${this.cgroupParent}/`) || ids.some((id) => cg.includes(`/crio-${id}`) || cg.includes(`/crio-conmon-${id}`));
    };
    return listProcesses().filter((p) => p.pid !== process.pid && (p.cmdline.includes(this.dir + "/") || processEnvHas(p.pid, `SHIMLAB_RUN_DIR=${path.join(this.dir, "shimlab-run")}`) || inOurCgroup(p.pid)));
  }

  /**
   * Ids of every container and pod this CRI-O made: its storage keeps a directory for each that is
   * still there, and its log names every one it created, the ones since removed too (their conmon
   * cgroups outlive them). Other 64-hex words of the log (image ids) name no cgroup and cost a
   * failed rmdir at most.
   */
  containerIds(): string[] {
    const ids = new Set<string>();
    try {
      for (const n of fs.readdirSync(path.join(this.dir, "runroot", "overlay-containers"))) if (/^[0-9a-f]{64}$/.test(n)) ids.add(n);
    } catch {
      /* no storage yet */
    }
    try {
      for (const m of fs.readFileSync(this.logPath, "utf8").matchAll(/\b[0-9a-f]{64}\b/g)) ids.add(m[0]);
    } catch {
      /* no log */
    }
    return [...ids];
  }

  /**
   * cgroupfs CRI-O puts a pod that names no cgroup parent (critest's) and its
   * conmons at the hierarchy's top, crio-<id> and crio-conmon-<id>: they go
   * with the instance, as do the shimlab agents' under cgroupParent.
   */
  private removeCgroups(ids: string[]): void {
    for (const id of ids) for (const name of [`crio-${id}`, `crio-conmon-${id}`, `crio/crio-${id}`]) removeCgroupTree(`/${name}`);
    // CRI-O's own parent for them, when this instance made it (another may still use one it found).
    if (!this.crioCgroupExisted) removeCgroupTree("/crio");
    removeCgroupTree(this.cgroupParent);
  }

  private async reapLeftovers(): Promise<void> {
    const runcRoot = path.join(this.dir, "run", "runc");
    if (fs.existsSync(runcRoot)) {
      const ids = fs.readdirSync(runcRoot);
      for (const id of ids) await runCommand(this.o.peer.runc, ["--root", runcRoot, "delete", "--force", id]).catch(() => undefined);
    }
    for (const p of this.leftovers()) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }

  async stop(): Promise<void> {
    this.cri.close();
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGTERM");
      const t = setTimeout(() => this.proc?.kill("SIGKILL"), 15_000);
      await this.exited;
      clearTimeout(t);
    }
    this.proc = null;
  }

  /**
   * Stops CRI-O, then removes what outlives it as containers outlive any CRI
   * runtime (a test that failed halfway, or a CRI-O that crashed): conmon and
   * its runc containers, shimlab shims and agents started with its environment;
   * its bridge; its mounts (storage, pinned namespaces); its directory. A test
   * checks for leaks before calling this.
   */
  async destroy(): Promise<void> {
    await this.stop();
    const ids = this.containerIds();
    await this.reapLeftovers();
    this.removeCgroups(ids);
    const keep = process.env.SHIMLAB_KEEP_LOGS;
    if (keep && fs.existsSync(this.logPath)) {
      fs.mkdirSync(keep, { recursive: true });
      fs.copyFileSync(this.logPath, path.join(keep, `${path.basename(this.dir)}-crio.log`));
    }
    if (this.o.cni) removeCniBridge(this.o.cni as CniNetwork);
    await unmountUnder(this.dir);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
