// A warm VM's rehearsal: before its agent serves, it runs a throwaway pod's
// containers through its runtime, reads the network, and runs the network's
// commands in a namespace of its own: the work a pod will ask for. Under TCG the first run of any code is translated first,
// and translation, not execution, is most of a short-lived process's time; the
// translated blocks stay in QEMU's cache, and with the guest's mappings fixed
// (norandmaps) the pod's crun and ip find them there. So the rehearsal takes a
// pod's shape as CRI makes it: a sandbox container that stays up, and a
// container that joins its IPC and UTS namespaces, in cgroups nested as the
// agent nests them, on the VM's shared filesystem (9p) with files bound from
// it, as a pod's root filesystems and /etc/hosts are; the guest kernel's paths
// for all of that are translated here, not on a pod's path. Only a factory's
// VMs rehearse: they wait in a pool anyway, while a cold VM has a pod waiting.
import fs from "node:fs";
import path from "node:path";
import type { OciSpec } from "../oci/spec";
import { REHEARSAL_ID, rehearsalSpec, type RehearsalFiles } from "../oci/rehearsal-spec";
import type { Logger } from "../util/logger";
import type { Runtime, RuntimeProcess } from "./runtime/types";
import { unmountOrDetach } from "../util/mounts";
import type { Reaper } from "./reaper";
import { spawnReaped } from "./runtime/exec";
import { SHARE_9P_OPTIONS, SHARE_TAG } from "../util/guest-share";
import { mountCall, mountDirect } from "../util/mount-call";

export { REHEARSAL_ID, rehearsalSpec, type RehearsalFiles } from "../oci/rehearsal-spec";
/** Past this the VM serves unrehearsed: a few seconds under TCG at most, normally. */
export const REHEARSAL_MS = 60_000;

export interface RehearsalNetwork {
  listInterfaces(): Promise<unknown>;
  listRoutes(): Promise<unknown>;
  /** UpdateInterface's and UpdateRoutes' commands, in the network namespace at netns (GuestNetwork.rehearseIn). */
  rehearseIn?(netns: string): Promise<void>;
}

/** A network namespace of the rehearsal's own, and its end. */
export type RehearsalNetns = () => Promise<{ path: string; close(): Promise<void> }>;

/** A network namespace held by a busybox `unshare -n` (reaped by the agent's reaper), nothing in it but a loopback. */
export function throwawayNetns(reaper: Reaper, busybox = "/bin/busybox"): RehearsalNetns {
  return async () => {
    const own = fs.readlinkSync("/proc/self/ns/net");
    const child = spawnReaped(reaper, busybox, ["unshare", "-n", busybox, "sleep", "600"], [-1, -1, -1]);
    let exited = false;
    void child.exit.then(() => (exited = true));
    const close = async () => {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
      await child.exit;
    };
    const ns = `/proc/${child.pid}/ns/net`;
    // the namespace is the child's once unshare(2) ran in it, a moment after the spawn
    for (const t0 = Date.now(); Date.now() - t0 < 5_000 && !exited; await new Promise((r) => setTimeout(r, 5))) {
      let now = "";
      try {
        now = fs.readlinkSync(ns);
      } catch {
        /* not yet, or gone */
      }
      if (now && now !== own) return { path: ns, close };
    }
    await close();
    throw new Error(exited ? `${busybox} unshare -n exited` : "no network namespace of its own within 5 s");
  };
}

/** /proc/stat's first line: the jiffies the CPUs spent idle (idle and iowait), and in all. */
export function cpuJiffies(stat: string = fs.readFileSync("/proc/stat", "utf8")): { idle: number; total: number } {
  const f = stat.slice(0, stat.indexOf("\n")).trim().split(/\s+/).slice(1).map(Number);
  return { idle: (f[3] || 0) + (f[4] || 0), total: f.reduce((a, b) => a + (b || 0), 0) };
}

/**
 * Resolves once the CPUs were idle (at least `idle` of a window's jiffies) for `windows` windows in
 * a row, or at maxMs; with how long that took. The rehearsal's end leaves work the kernel does
 * later, on its kworkers (a network namespace's teardown above all, and cgroups' and mounts'):
 * under TCG ~0.1-0.2 s of CPU, which a pod arriving at once would share.
 */
export async function untilIdle(o: { windowMs?: number; idle?: number; windows?: number; maxMs?: number; read?: () => { idle: number; total: number } } = {}): Promise<{ ms: number; idle: boolean }> {
  const { windowMs = 100, idle = 0.9, windows = 2, maxMs = 3_000, read = () => cpuJiffies() } = o;
  const t0 = Date.now();
  let prev = read();
  let inRow = 0;
  while (Date.now() - t0 < maxMs) {
    await new Promise((r) => setTimeout(r, windowMs));
    const now = read();
    const total = now.total - prev.total;
    inRow = total > 0 && (now.idle - prev.idle) / total >= idle ? inRow + 1 : 0;
    prev = now;
    if (inRow >= windows) return { ms: Date.now() - t0, idle: true };
  }
  return { ms: Date.now() - t0, idle: false };
}

/** The VM's shared filesystem (the sandbox storage's), mounted for the rehearsal's root filesystem and taken down after. */
export interface RehearsalShare {
  mount(dir: string): void;
  unmount(dir: string): void;
}

/** The guest's side of the VM's share, mounted as CreateSandbox's storage mounts it. */
export function guestShare(): RehearsalShare {
  const m = { type: "9p", source: SHARE_TAG, options: [...SHARE_9P_OPTIONS] };
  return {
    mount: (dir) => mountDirect(m, dir, mountCall(m)!),
    // lazily when busy: what the rehearsal left running (a process of a container it could not end) keeps nothing of it in the tree
    unmount: (dir) => unmountOrDetach(dir),
  };
}

/** The rehearsal's ids and cgroups: a pod's, as the agent names them (`<parent>/<sandbox>/<container>`). */
export const REHEARSAL_SANDBOX = `${REHEARSAL_ID}-sandbox`;
export const REHEARSAL_CONTAINER = `${REHEARSAL_ID}-container`;
const cgroupOf = (id: string) => `/${REHEARSAL_ID}/${REHEARSAL_SANDBOX}/${id}`;

/** Runs the rehearsal; never throws (a VM that could not rehearse is still a VM), says how long each part took. */
export async function rehearse(o: {
  runtime: Runtime;
  network: RehearsalNetwork | null;
  stateDir: string;
  /** Without one the root filesystem is in the state directory: the container paths without the share's. */
  share?: RehearsalShare | null;
  /** Where the network's commands are rehearsed; without one only its reads are. */
  netns?: RehearsalNetns | null;
  busybox?: string;
  logger: Logger;
  timeoutMs?: number;
  /** Waits for what the rehearsal's end left the kernel to do (untilIdle), before the agent serves. */
  settle?: () => Promise<{ ms: number; idle: boolean }>;
}): Promise<void> {
  const timeoutMs = o.timeoutMs ?? REHEARSAL_MS;
  const dir = path.join(o.stateDir, REHEARSAL_ID);
  const shareDir = path.join(dir, "share");
  let shared = false;
  const top = () => (shared ? path.join(shareDir, REHEARSAL_ID) : dir);
  const t0 = Date.now();
  // Nothing serves yet: without a handle of its own the process would end while a child's exit is awaited.
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not done in ${timeoutMs} ms`)), timeoutMs)));
  // Once the deadline passed, or a step failed, what run() has still in flight ends here: the
  // destroys below let its awaited exits resolve, and nothing after them may run.
  let over = false;
  const live = <T>(v: T): T => {
    if (over) throw new Error("rehearsal over");
    return v;
  };
  // the namespace run() holds, if any, for the end to close whatever became of run()
  const held: { netns: { path: string; close(): Promise<void> } | null } = { netns: null };
  try {
    await Promise.race([run(), deadline]);
  } catch (e) {
    o.logger.warn("rehearsal failed", { error: (e as Error).message });
  } finally {
    over = true;
    if (held.netns) await held.netns.close().catch((e: Error) => o.logger.warn("rehearsal network namespace not removed", { error: e.message }));
    // also when create was still running at the deadline: the runtime's delete tolerates a container it never made
    for (const id of [REHEARSAL_CONTAINER, REHEARSAL_SANDBOX])
      await o.runtime.destroy(id).catch((e: Error) => o.logger.warn("rehearsal container not removed", { container: id, error: e.message }));
    for (const p of [cgroupOf(REHEARSAL_CONTAINER), cgroupOf(REHEARSAL_SANDBOX), `/${REHEARSAL_ID}/${REHEARSAL_SANDBOX}`, `/${REHEARSAL_ID}`]) o.runtime.removeCgroup(p);
    let stillMounted = false;
    if (shared) {
      try {
        fs.rmSync(top(), { recursive: true, force: true });
      } catch (e) {
        o.logger.warn("rehearsal files not removed from the share", { error: (e as Error).message });
      }
      try {
        o.share!.unmount(shareDir);
      } catch (e) {
        stillMounted = true;
        o.logger.warn("rehearsal share not unmounted", { error: (e as Error).message });
      }
    }
    // never a recursive remove through a share still mounted: it is the host's directory
    if (!stillMounted) fs.rmSync(dir, { recursive: true, force: true });
    clearTimeout(timer);
  }
  if (o.settle) {
    const r = await o.settle();
    o.logger[r.idle ? "info" : "warn"]("guest settled", { ms: r.ms, idle: r.idle });
  }

  async function run(): Promise<void> {
    fs.mkdirSync(dir, { recursive: true });
    if (o.share) {
      fs.mkdirSync(shareDir);
      try {
        o.share.mount(shareDir);
        shared = true;
      } catch (e) {
        // a VM booted without one: the rest is still worth rehearsing
        o.logger.info("rehearsing without the VM's share", { error: (e as Error).message });
      }
    }
    const rootfs = path.join(top(), "rootfs");
    fs.mkdirSync(path.join(rootfs, "bin"), { recursive: true });
    const bb = o.busybox ?? "/bin/busybox";
    try {
      fs.linkSync(bb, path.join(rootfs, "bin", "busybox"));
    } catch {
      // another filesystem: the share
      fs.copyFileSync(bb, path.join(rootfs, "bin", "busybox"));
      fs.chmodSync(path.join(rootfs, "bin", "busybox"), 0o755);
    }
    const etc = path.join(top(), "etc");
    fs.mkdirSync(etc);
    const files: RehearsalFiles = { hosts: path.join(etc, "hosts"), hostname: path.join(etc, "hostname"), resolvConf: path.join(etc, "resolv.conf") };
    fs.writeFileSync(files.hosts, "127.0.0.1 localhost\n");
    fs.writeFileSync(files.hostname, `${REHEARSAL_ID}\n`);
    fs.writeFileSync(files.resolvConf, "nameserver 127.0.0.1\n");
    const up = async (id: string, spec: OciSpec, join?: { ipc: string; uts: string }): Promise<RuntimeProcess | null> => {
      const p = live(await o.runtime.create({ id, dir: path.join(dir, id), spec, cgroupsPath: cgroupOf(id), join }));
      p?.stdout?.resume();
      p?.stderr?.resume();
      return live(await o.runtime.start(id)) ?? p;
    };
    const sandbox = await up(REHEARSAL_SANDBOX, rehearsalSpec("sandbox", rootfs, files));
    if (!sandbox) throw new Error("the runtime gave no sandbox process to join");
    const ns = (t: string) => `/proc/${sandbox.pid}/ns/${t}`;
    const container = await up(REHEARSAL_CONTAINER, rehearsalSpec("container", rootfs, files), { ipc: ns("ipc"), uts: ns("uts") });
    const code = container ? live(await container.exit) : 0;
    live(await o.runtime.signal(REHEARSAL_SANDBOX, sandbox, 9));
    live(await sandbox.exit);
    const containerMs = Date.now() - t0;
    live(await o.network?.listInterfaces());
    live(await o.network?.listRoutes());
    const networkMs = Date.now() - t0 - containerMs;
    let networkCommandsMs: number | undefined;
    if (o.netns && o.network?.rehearseIn) {
      const t1 = Date.now();
      const ns = await o.netns();
      if (over) return void (await ns.close());
      held.netns = ns;
      live(await o.network.rehearseIn(ns.path));
      held.netns = null;
      await ns.close();
      networkCommandsMs = Date.now() - t1;
    }
    o.logger.info("rehearsed", { exitCode: code, containerMs, networkMs, networkCommandsMs, shared });
  }
}
