// One QEMU process per sandbox: launched with a boot deadline, watched
// through QMP and its console, and torn down so that no QEMU is ever left
// behind — quit over QMP, then SIGKILL; the pid is in vm.json for `delete`
// after a shim crash, and the kernel kills QEMU if the shim dies first
// (PR_SET_PDEATHSIG through setpriv, where util-linux has it).
import type { ShareOptions } from "../types";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import { VirtioSerialTransport } from "../../agent/transport";
import type { StorageInit } from "../../gen/grpc";
import { deadlineExceeded, ErrdefsError, unavailable } from "../../errdefs";
import type { Logger } from "../../util/logger";
import type { GuestNetwork, LoopbackListener, SandboxVm, VmExit, VmRecord } from "../types";
import { processStartTime, socketIn, writeVmRecord } from "../rundir";
import { adoptedProcess, childProcess, type HostProcess } from "../process";
import { HOTPLUG_PORT_PREFIX, qemuArgs, type QemuSpec } from "./cmdline";
import { GUEST_SHARED_DIR, guestSharedPath, SHARE_9P_OPTIONS, SHARE_TAG } from "../../util/guest-share";
import { native } from "../../native";
import { QmpClient } from "./qmp";
import { detachPodNetwork, type PodNetworkPlan } from "./network";
import { PodLoopback } from "./loopback";
import type { WarmVm } from "../factory/protocol";
import { bindMount, mountsBelow, unmountTree } from "../../util/mounts";

/** The mock agent logs this once it listens on the port (src/mock-agent/serial.ts says the same). */
export const AGENT_READY_LINE = "agent serving on virtio-serial";
const CONSOLE_LOG_MAX = 1 << 20;
const TAIL_MAX = 4096;

export interface LaunchOptions {
  qemuPath: string;
  /** Everything but the socket paths, which live in runDir. */
  spec: Omit<QemuSpec, "agentSocket" | "qmpSocket" | "consoleSocket" | "sharedDir" | "pidFile">;
  runDir: string;
  logger: Logger;
  bootTimeoutMs: number;
  /** The console line that means the guest is ready (default: the agent serving). */
  readyLine?: string;
  env?: NodeJS.ProcessEnv;
  /** Share a directory as kataShared (container rootfs). */
  share?: boolean;
  /** The pod's network, its taps made (network.ts): QEMU runs in that namespace, and the taps go at teardown. */
  network?: PodNetworkPlan;
  /** The pod's own network namespace (none for host networking): openLoopback() redirects its loopback. */
  loopback?: { netns: string; comment: string };
  /**
   * A warm VM's keeper (native/vm-keeper.c, `shimlab factory`): QEMU runs under it, in a session of
   * its own, and lives as long as the keeper's holder (the lifeline on the keeper's fd 3) instead of
   * dying with the process that launched it.
   */
  keeper?: string;
  /** With a keeper: a VM adopted and not claimed (adopt() writes WARM_CLAIM_FILE in its directory) within ms is killed. */
  unclaimedMs?: number;
  /** Called with the spawned process (QEMU, or its keeper) and QEMU's pid, before the boot is waited for. */
  onSpawn?: (child: ChildProcess, qemuPid: number) => void;
}

/** What a warm VM's taker writes in its directory once it has taken it over, for its keeper (--claim). */
export const WARM_CLAIM_FILE = "claimed";

/** A booted VM that a factory handed out, and its keeper: what its new holder needs to take it over. */
export type WarmVmHandle = WarmVm & { keeper: { pid: number; startTime: string } };

export interface BootTimes {
  /** Spawn to QMP answering. */
  qmpMs: number;
  /** Spawn to the ready line on the console. */
  readyMs: number;
}

let setprivPath: string | null | undefined;
function setpriv(): string | null {
  if (setprivPath === undefined) setprivPath = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => fs.existsSync(p)) ?? null;
  return setprivPath;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class QemuVm implements SandboxVm {
  readonly kind = "qemu" as const;
  readonly guest = true;
  readonly exited: Promise<VmExit>;
  readonly agentTransport: VirtioSerialTransport;
  readonly consoleLog: string;
  readonly args: string[];
  times: BootTimes = { qmpMs: 0, readyMs: 0 };
  private qmp: QmpClient | null = null;
  private console: net.Socket | null = null;
  private consoleFd: number | null = null;
  private consoleBytes = 0;
  private tail = "";
  private stderr = "";
  private exit: VmExit | null = null;
  private stopping: Promise<void> | null = null;
  private readonly shares = new Set<string>();
  private lineWaiters: { line: string; resolve: () => void }[] = [];
  private readonly sockets: { agent: string; qmp: string; console: string };
  private readonly sharedDir: string | null;
  private record: VmRecord | null = null;
  private loopback: PodLoopback | null = null;
  /** A warm VM's directory, outside the sandbox's run dir: it goes with the VM. */
  private ownDir: string | null = null;

  private constructor(
    private readonly proc: HostProcess,
    private readonly o: LaunchOptions,
    args: string[],
    sockets: { agent: string; qmp: string; console: string },
    sharedDir: string | null,
    stderr?: Readable | null,
  ) {
    this.args = args;
    this.agentTransport = new VirtioSerialTransport(sockets.agent);
    this.sockets = sockets;
    this.sharedDir = sharedDir;
    this.consoleLog = path.join(o.runDir, "console.log");
    this.exited = proc.exited.then((x) => (this.exit = x));
    stderr?.setEncoding("utf8");
    stderr?.on("data", (d: string) => (this.stderr = (this.stderr + d).slice(-TAIL_MAX)));
  }

  get pid(): number {
    return this.proc.pid;
  }

  get network(): GuestNetwork | null {
    const n = this.o.network;
    return n?.nics.length ? { interfaces: n.interfaces, routes: n.routes } : null;
  }

  /** The last console output and QEMU's own complaints, for error messages. */
  diagnostics(): string {
    const parts = [];
    if (this.stderr.trim()) parts.push(`qemu: ${this.stderr.trim()}`);
    if (this.tail.trim()) parts.push(`console: ${this.tail.trim().split("\n").slice(-8).join(" | ")}`);
    else if (this.console) parts.push("the guest printed nothing on its console");
    return parts.join("; ");
  }

  static async launch(o: LaunchOptions): Promise<QemuVm> {
    fs.mkdirSync(o.runDir, { recursive: true, mode: 0o700 });
    const sockets = { agent: socketIn(o.runDir, "agent.sock"), qmp: socketIn(o.runDir, "qmp.sock"), console: socketIn(o.runDir, "console.sock") };
    for (const s of Object.values(sockets)) fs.rmSync(s, { force: true });
    let sharedDir: string | null = null;
    if (o.share) {
      sharedDir = path.join(o.runDir, "shared");
      fs.mkdirSync(sharedDir, { recursive: true, mode: 0o700 });
    }
    const nics = o.network?.nics.map((n) => ({ tap: n.tap, mac: n.mac }));
    const args = qemuArgs({ ...o.spec, agentSocket: sockets.agent, qmpSocket: sockets.qmp, consoleSocket: sockets.console, sharedDir: sharedDir ?? undefined, nics });
    const env = { ...(o.env ?? process.env) };
    delete env.NODE_EXTRA_CA_CERTS;
    const sp = setpriv();
    // Kata starts the VMM inside the pod's namespace too: QEMU opens its taps by name there.
    // nsenter and setpriv both exec, so the pid spawned is QEMU's.
    const qemu = nics?.length ? ["nsenter", `--net=${o.network!.netns}`, "--", o.qemuPath, ...args] : [o.qemuPath, ...args];
    const claim = o.keeper && o.unclaimedMs ? ["--claim", path.join(o.runDir, WARM_CLAIM_FILE), String(o.unclaimedMs)] : [];
    const [cmd, argv] = o.keeper ? [o.keeper, [...claim, ...qemu]] : sp ? [sp, ["--pdeathsig", "SIGKILL", "--", ...qemu]] : [qemu[0], qemu.slice(1)];
    const t0 = Date.now();
    const child = spawn(cmd, argv, { cwd: o.runDir, stdio: ["ignore", "ignore", "pipe", ...(o.keeper ? (["pipe"] as const) : [])], env, detached: !!o.keeper });
    const spawnErr = new Promise<Error>((resolve) => child.once("error", resolve));
    if (!child.pid) throw unavailable(`cannot start ${o.qemuPath}: ${(await spawnErr).message}`);
    let proc = childProcess(child);
    if (o.keeper) {
      // The keeper forks QEMU: the VM's pid is its child's.
      const qemuPid = await keptChild(child.pid, proc);
      if (!qemuPid) throw unavailable(`the VM keeper ${o.keeper} started no QEMU: ${(await proc.exited.then((x) => `it exited (code ${x.code}, signal ${x.signal})`))}`);
      const keeper = proc;
      proc = { pid: qemuPid, exited: keeper.exited, alive: keeper.alive, kill: (sig) => void process.kill(qemuPid, sig) };
    }
    o.onSpawn?.(child, proc.pid);
    const vm = new QemuVm(proc, o, [o.qemuPath, ...args], sockets, sharedDir, child.stderr);
    vm.record = {
      kind: "qemu",
      pid: proc.pid,
      startTime: processStartTime(proc.pid) ?? "",
      agentUrl: vm.agentTransport.url,
      ...(nics?.length ? { netns: o.network!.netns, nics: o.network!.nics.map((n) => ({ hostIf: n.hostIf, tap: n.tap })) } : {}),
    };
    writeVmRecord(o.runDir, vm.record);
    o.logger.info("qemu started", { pid: proc.pid, accel: o.spec.accel, machine: o.spec.machine, memoryMb: o.spec.memoryMb });
    o.logger.debug("qemu command line", { args: vm.args.join(" ") });
    try {
      await vm.boot(t0, sockets);
    } catch (e) {
      const diag = vm.diagnostics();
      await vm.stop();
      const msg = `${(e as Error).message}${diag ? `; ${diag}` : ""}`;
      throw e instanceof ErrdefsError ? new ErrdefsError(e.kind, msg, { cause: e }) : unavailable(msg, { cause: e });
    }
    o.logger.info("vm booted", { pid: proc.pid, qmpMs: vm.times.qmpMs, readyMs: vm.times.readyMs });
    return vm;
  }

  /** What a factory hands out of a warm VM it launched (under a keeper) and released. */
  warmHandle(): Omit<WarmVmHandle, "keeper" | "dir" | "pid" | "hotplugPorts"> {
    if (!this.o.keeper || !this.sharedDir) throw new Error("not a warm VM: launched without a keeper or a shared directory");
    return {
      startTime: this.record?.startTime ?? "",
      agentSocket: this.sockets.agent,
      qmpSocket: this.sockets.qmp,
      consoleSocket: this.sockets.console,
      sharedDir: this.sharedDir,
    };
  }

  /**
   * The pod's NICs into a running VM, as Kata hot-plugs its endpoints: each tap is opened in the
   * pod's namespace (QEMU runs outside it) and handed to QEMU over QMP (getfd), then a netdev on it
   * and a virtio-net device with the veth's MAC on one of the VM's empty root ports. The agent finds
   * each by MAC (UpdateInterface waits for it to show up).
   */
  private async plugNetwork(n: PodNetworkPlan, ports: number): Promise<void> {
    if (n.nics.length > ports) throw unavailable(`the warm VM has ${ports} ports for NICs, and the pod has ${n.nics.length}`);
    const qmp = this.qmp!;
    const addon = native();
    for (const [i, nic] of n.nics.entries()) {
      const fdName = `fd-${nic.tap}`;
      const fd = addon.openTapInNetns(n.netns, nic.tap);
      try {
        await qmp.getfd(fdName, fd, addon.sendWithFd);
      } finally {
        addon.closeFd(fd);
      }
      await qmp.execute("netdev_add", { type: "tap", id: `network-${i}`, fd: fdName });
      await qmp.execute("device_add", { driver: "virtio-net-pci", id: `net-${i}`, netdev: `network-${i}`, mac: nic.mac, bus: `${HOTPLUG_PORT_PREFIX}${i}`, romfile: "" });
    }
    this.o.logger.info("pod NICs plugged into the warm VM", { nics: n.nics.map((x) => `${x.tap} ${x.mac}`).join(", ") });
  }

  /**
   * Lets go of a booted VM without stopping it: its console and QMP connections close, so that the
   * sandbox it is handed to can make its own (QEMU serves one client on each). For a factory, and
   * the end of a teardown.
   */
  release(): void {
    for (const w of this.lineWaiters) w.resolve();
    this.lineWaiters = [];
    this.qmp?.close();
    this.qmp = null;
    this.console?.destroy();
    this.console = null;
    if (this.consoleFd !== null) fs.closeSync(this.consoleFd);
    this.consoleFd = null;
  }

  /**
   * Takes over a VM a factory booted (warm): its console and QMP, its agent's port, its shared
   * directory. Its record, in this sandbox's run dir, names its keeper and its directory, for
   * `delete` to reap after a crash; the keeper already ends it with this process.
   */
  static async adopt(o: LaunchOptions, w: WarmVmHandle): Promise<QemuVm> {
    fs.mkdirSync(o.runDir, { recursive: true, mode: 0o700 });
    const t0 = Date.now();
    const sockets = { agent: w.agentSocket, qmp: w.qmpSocket, console: w.consoleSocket };
    const vm = new QemuVm(adoptedProcess(w.pid, w.startTime), o, [o.qemuPath], sockets, w.sharedDir);
    vm.ownDir = w.dir;
    const n = o.network;
    vm.record = {
      kind: "qemu",
      pid: w.pid,
      startTime: w.startTime,
      agentUrl: vm.agentTransport.url,
      extraPids: [w.keeper],
      dirs: [w.dir],
      ...(n?.nics.length ? { netns: n.netns, nics: n.nics.map((x) => ({ hostIf: x.hostIf, tap: x.tap })) } : {}),
    };
    writeVmRecord(o.runDir, vm.record);
    const deadline = t0 + o.bootTimeoutMs;
    try {
      vm.attachConsole(await vm.step("connecting its console", vm.connectConsole(sockets.console, deadline), deadline));
      vm.qmp = await vm.step("connecting QMP", vm.connectQmp(sockets.qmp, deadline), deadline);
      const st = await vm.step("querying its status", vm.qmp.queryStatus(), deadline);
      if (!st.running) throw unavailable(`the warm VM is not running its guest (status ${st.status})`);
      if (n?.nics.length) await vm.step("plugging in the pod's NICs", vm.plugNetwork(n, w.hotplugPorts), deadline);
    } catch (e) {
      await vm.stop();
      throw e;
    }
    // Its keeper kills a VM adopted and never claimed: the factory died before its answer reached us.
    fs.writeFileSync(path.join(w.dir, WARM_CLAIM_FILE), `${process.pid}\n`);
    vm.times = { qmpMs: Date.now() - t0, readyMs: Date.now() - t0 };
    o.logger.info("warm vm adopted", { pid: w.pid, keeper: w.keeper.pid, ms: vm.times.readyMs });
    return vm;
  }

  private async connectQmp(p: string, deadline: number): Promise<QmpClient> {
    for (;;) {
      try {
        return await QmpClient.connect(p, Math.max(100, deadline - Date.now()));
      } catch (e) {
        // Refused between QEMU's bind and listen: try again, within the deadline.
        if (this.exit || Date.now() > deadline || !/ECONNREFUSED|ENOENT/.test((e as Error).message)) throw e;
        await delay(10);
      }
    }
  }

  /** Races a step against the boot deadline and QEMU exiting. */
  private step<T>(what: string, p: Promise<T>, deadline: number): Promise<T> {
    let timer: NodeJS.Timeout;
    const left = deadline - Date.now();
    return Promise.race([
      p,
      this.exited.then((x) => {
        throw unavailable(`qemu exited while ${what} (code ${x.code}, signal ${x.signal})`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(deadlineExceeded(`boot deadline of ${this.o.bootTimeoutMs} ms passed while ${what}`)), Math.max(0, left));
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private async boot(t0: number, sockets: { qmp: string; console: string }): Promise<void> {
    const deadline = t0 + this.o.bootTimeoutMs;
    const appeared = async (p: string) => {
      while (!fs.existsSync(p)) {
        if (this.exit) return;
        await delay(5);
      }
    };
    await this.step("waiting for its sockets", Promise.all([appeared(sockets.qmp), appeared(sockets.console)]), deadline);
    const ready = this.waitLine(this.o.readyLine ?? AGENT_READY_LINE);
    this.attachConsole(await this.step("connecting its console", this.connectConsole(sockets.console, deadline), deadline));
    this.qmp = await this.step("connecting QMP", this.connectQmp(sockets.qmp, deadline), deadline);
    const st = await this.step("querying its status", this.qmp.queryStatus(), deadline);
    if (!st.running) throw unavailable(`qemu is not running the guest (status ${st.status})`);
    this.times.qmpMs = Date.now() - t0;
    await this.step("waiting for the guest agent", ready, deadline);
    this.times.readyMs = Date.now() - t0;
  }

  /** Connects to QEMU's console socket; the file exists a moment before QEMU listens on it, so refusals are retried. */
  private connectConsole(p: string, deadline: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        const s = net.createConnection({ path: p });
        s.once("connect", () => {
          s.removeAllListeners("error");
          s.on("error", () => {});
          resolve(s);
        });
        s.once("error", (e) => {
          s.destroy();
          if (this.exit || Date.now() > deadline) reject(new Error(`console ${p}: ${e.message}`));
          else setTimeout(attempt, 10);
        });
      };
      attempt();
    });
  }

  private attachConsole(s: net.Socket): void {
    try {
      this.consoleFd = fs.openSync(this.consoleLog, "a", 0o600);
    } catch {
      this.consoleFd = null;
    }
    this.console = s;
    s.setEncoding("utf8");
    let partial = "";
    s.on("data", (d: string) => {
      if (this.consoleFd !== null && this.consoleBytes < CONSOLE_LOG_MAX) {
        this.consoleBytes += d.length;
        try {
          fs.writeSync(this.consoleFd, d);
        } catch {
          /* a full disk loses console lines, nothing else */
        }
      }
      this.tail = (this.tail + d).slice(-TAIL_MAX);
      partial += d;
      let nl: number;
      while ((nl = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        this.lineWaiters = this.lineWaiters.filter((w) => {
          if (!line.includes(w.line)) return true;
          w.resolve();
          return false;
        });
      }
      if (partial.length > TAIL_MAX) partial = partial.slice(-TAIL_MAX);
    });
  }

  private waitLine(line: string): Promise<void> {
    return new Promise((resolve) => this.lineWaiters.push({ line, resolve }));
  }

  /** QEMU's view of the guest, for diagnostics. */
  async status(): Promise<string> {
    if (!this.qmp || this.qmp.isClosed) throw unavailable("no QMP connection");
    return (await this.qmp.queryStatus()).status;
  }

  async shareRootfs(containerId: string, hostPath: string, o: ShareOptions = {}): Promise<string> {
    if (!this.sharedDir) throw unavailable("this VM has no shared filesystem");
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(containerId)) throw unavailable(`container id ${JSON.stringify(containerId)} cannot name a shared directory`);
    const target = path.join(this.sharedDir, containerId, "rootfs");
    // A file (a bind-mounted /etc/hosts, say) needs a file to be bound onto.
    if (fs.statSync(hostPath).isDirectory()) fs.mkdirSync(target, { recursive: true });
    else {
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, "", { flag: "a" });
    }
    // Never recursive: a copy of a sub-mount would pin its directory in the host's namespace
    // (guest-mounts.ts). The propagation is what the spec asked for (bindMount says why).
    bindMount(hostPath, target, o.propagation);
    this.shares.add(containerId);
    return guestSharedPath(containerId);
  }

  async unshareRootfs(containerId: string): Promise<void> {
    if (!this.sharedDir || !this.shares.has(containerId)) return;
    const dir = path.join(this.sharedDir, containerId);
    const target = path.join(dir, "rootfs");
    unmountTree(target);
    this.shares.delete(containerId);
    // rmdir or unlink, never a recursive rm: a bind that refused to go must not take the container's files with it.
    if (fs.lstatSync(target).isDirectory()) fs.rmdirSync(target);
    else fs.unlinkSync(target);
    fs.rmdirSync(dir);
  }

  sandboxStorages(): StorageInit[] {
    if (!this.sharedDir) return [];
    return [
      {
        driver: "9p",
        source: SHARE_TAG,
        fstype: "9p",
        options: [...SHARE_9P_OPTIONS],
        mountPoint: GUEST_SHARED_DIR,
      },
    ];
  }

  async openLoopback(): Promise<LoopbackListener | null> {
    const want = this.o.loopback;
    if (!want) return null;
    if (this.loopback) return this.loopback;
    if (this.stopping || this.exit) throw unavailable("the VM is stopping");
    const lb = await PodLoopback.listen(want.netns, want.comment, this.o.logger);
    this.loopback = lb;
    // Recorded before the rule exists: a crash between the two leaves `delete` a rule to look for, never a rule it does not know.
    this.record = { ...this.record!, loopback: { netns: want.netns, port: lb.port, comment: want.comment } };
    writeVmRecord(this.o.runDir, this.record);
    await lb.redirect();
    return lb;
  }

  stop(): Promise<void> {
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    // The redirect first: while the guest goes down, a client is refused at once rather than left waiting.
    await this.loopback?.close();
    for (const w of this.lineWaiters) w.resolve();
    this.lineWaiters = [];
    if (!this.exit) {
      // Ask first: QEMU flushes and exits at once on quit. Then insist.
      if (this.qmp && !this.qmp.isClosed) await this.qmp.quit(1000).catch(() => {});
      const gone = await Promise.race([this.exited.then(() => true), delay(2000).then(() => false)]);
      if (!gone) {
        this.o.logger.warn("qemu did not quit; killing it", { pid: this.pid });
        try {
          this.proc.kill("SIGKILL");
        } catch {
          /* already gone */
        }
        await this.exited;
      }
    }
    this.release();
    for (const id of [...this.shares]) await this.unshareRootfs(id).catch((e) => this.o.logger.error("unshare failed", { container: id, error: (e as Error).message }));
    for (const s of Object.values(this.sockets)) fs.rmSync(s, { force: true });
    if (this.o.network) await detachPodNetwork(this.o.network, this.o.logger);
    if (this.ownDir) {
      // never a recursive removal through a bind that would not go
      if (mountsBelow(this.ownDir).length === 0) fs.rmSync(this.ownDir, { recursive: true, force: true });
      else this.o.logger.error("the warm VM's directory still has mounts: left in place", { dir: this.ownDir });
    }
  }
}

/** The pid of the one child a VM keeper forks, once it has (a few ms after its spawn); null if it exited first. */
async function keptChild(keeperPid: number, keeper: HostProcess): Promise<number | null> {
  for (let i = 0; i < 400 && keeper.alive(); i++) {
    try {
      const kids = fs.readFileSync(`/proc/${keeperPid}/task/${keeperPid}/children`, "utf8").trim();
      if (kids) return Number(kids.split(/\s+/)[0]);
    } catch {
      return null;
    }
    await delay(5);
  }
  return null;
}
