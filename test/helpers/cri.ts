// Looking at pods the way an operator would: shim processes and the sockets
// they hold from /proc, and the `address` file containerd keeps per bundle.
import fs from "node:fs";
import path from "node:path";
import { descendants, listProcesses, type ProcInfo } from "../../src/harness/leaks";
import type { Containerd } from "../../src/harness/containerd";
import type { CriClient } from "../../src/harness/cri/client";
import { CRI_NAMESPACE } from "../../src/harness/cri/images";
import { shimAddressOf } from "../../src/harness/bundle";

export type Handler = "shimlab" | "runc";

/**
 * Shim daemons serving this containerd, known by their arguments rather than
 * the script's path: shimlab's daemon is the node process `start` launched
 * with `-socket`, or a factory's parked daemon that `start` handed the socket
 * to (its argv stays `-park …`: its bundle's shim.pid names it); runc's is its
 * binary without a `start`/`delete` action.
 */
export function shimDaemons(ctd: Containerd, handler: Handler): ProcInfo[] {
  const named = handler === "shimlab" ? shimPidsOf(ctd) : new Set<number>();
  return listProcesses().filter((p) => {
    const argv = p.cmdline.split(" ");
    if (handler === "shimlab" && named.has(p.pid) && /\bnode\b/.test(argv[0]) && argv.includes("-park")) return true;
    if (argOf(p, "-address") !== ctd.address || /^(start|delete)$/.test(argv[argv.length - 1])) return false;
    return handler === "shimlab" ? /\bnode\b/.test(argv[0]) && argv.includes("-socket") : /containerd-shim-runc-v2$/.test(argv[0]);
  });
}

/** The pids in the shim.pid files of this containerd's bundles, every namespace. */
function shimPidsOf(ctd: Containerd): Set<number> {
  const out = new Set<number>();
  const root = path.join(ctd.state, "io.containerd.runtime.v2.task");
  for (const ns of fs.existsSync(root) ? fs.readdirSync(root) : []) {
    for (const id of fs.readdirSync(path.join(root, ns))) {
      try {
        out.add(Number(fs.readFileSync(path.join(root, ns, id, "shim.pid"), "utf8")));
      } catch {
        /* no shim.pid (yet) */
      }
    }
  }
  return out;
}

/** Mock agents of this containerd's pods: a node process with a listen address and a state dir in ours. */
export function mockAgents(ctd: Containerd): ProcInfo[] {
  return listProcesses().filter((p) => /\bnode\b/.test(p.cmdline.split(" ")[0]) && p.cmdline.includes(" --listen ") && (argOf(p, "--state-dir") ?? "").startsWith(ctd.dir + "/"));
}

/** The value of a `-flag value` pair in a shim's command line. */
export function argOf(p: ProcInfo, flag: string): string | undefined {
  const a = p.cmdline.split(" ");
  const i = a.indexOf(flag);
  return i >= 0 ? a[i + 1] : undefined;
}

export function bundleDir(ctd: Containerd, id: string): string {
  return path.join(ctd.state, "io.containerd.runtime.v2.task", CRI_NAMESPACE, id);
}

export function bundleAddress(ctd: Containerd, id: string): string {
  return shimAddressOf(bundleDir(ctd, id));
}

/** Paths of the unix sockets a process has open, from its fds and /proc/net/unix. */
export function unixSocketsOf(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  const out: string[] = [];
  for (const line of fs.readFileSync("/proc/net/unix", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path; flags 00010000 = listening
    if (f.length >= 8 && inodes.has(f[6]) && f[3] === "00010000") out.push(f[7]);
  }
  return out;
}

/** The process whose command line is exactly cmd, below root in the process tree. */
export function findBelow(root: number, cmd: string): ProcInfo | undefined {
  return descendants(root).find((p) => p.cmdline === cmd);
}

/** Stops and removes every pod this CRI knows (for finally blocks). */
/**
 * Stops and removes every pod the runtime lists. Returns what failed (pod id and error), so that a
 * caller checking for leftovers can say why a pod is still there; it never throws.
 */
export async function removeAllPods(cri: CriClient): Promise<string[]> {
  const failed: string[] = [];
  const pods = await cri.runtime.ListPodSandbox({}).catch((e: Error) => {
    failed.push(`ListPodSandbox: ${e.message}`);
    return { items: [] };
  });
  await Promise.all(
    pods.items.map(async (p) => {
      for (const [call, f] of [
        ["StopPodSandbox", () => cri.runtime.StopPodSandbox({ podSandboxId: p.id })],
        ["RemovePodSandbox", () => cri.runtime.RemovePodSandbox({ podSandboxId: p.id })],
      ] as const) {
        try {
          await f();
        } catch (e) {
          failed.push(`${call} ${p.id.slice(0, 12)}: ${(e as Error).message}`);
        }
      }
    }),
  );
  return failed;
}

export async function waitUntil<T>(what: string, f: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
