// SandboxMetrics: what the sandbox costs the host, in containerd's cgroup v1
// Metrics (what the Task API's Stats returns too). A host agent's sandbox is
// a cgroup of its own, <cgroup parent>/<sandbox id>, holding every container
// of the pod (cgroups count hierarchically); a VM's cost on the host is its
// QEMU process, which shimlab puts in no cgroup of its own, so that process's
// own counters are read.
import fs from "node:fs";
import path from "node:path";
import type { MetricsInit } from "../gen/io.containerd.cgroups.v1";
import { failedPrecondition } from "../errdefs";

const TICKS_PER_SECOND = 100;
const PAGE = 4096;

function readNumber(file: string): number | undefined {
  try {
    const v = fs.readFileSync(file, "utf8").trim();
    return v === "max" ? undefined : Number(v);
  } catch {
    return undefined;
  }
}

function readKeyed(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      const [k, v] = line.split(" ");
      if (k && v !== undefined) out[k] = Number(v);
    }
  } catch {
    /* absent: no such controller */
  }
  return out;
}

/** A cgroup's counters (v1 hierarchies or the v2 unified tree), or null where it does not exist. */
export function cgroupMetrics(cgroupPath: string, root = "/sys/fs/cgroup"): MetricsInit | null {
  const rel = cgroupPath.replace(/^\/+/, "");
  if (fs.existsSync(path.join(root, "cgroup.controllers"))) {
    const dir = path.join(root, rel);
    if (!fs.existsSync(dir)) return null;
    const cpu = readKeyed(path.join(dir, "cpu.stat"));
    const mem = readKeyed(path.join(dir, "memory.stat"));
    const usage = readNumber(path.join(dir, "memory.current"));
    return {
      cpu: { usage: { total: (cpu.usage_usec ?? 0) * 1000, user: (cpu.user_usec ?? 0) * 1000, kernel: (cpu.system_usec ?? 0) * 1000 } },
      memory: { rss: mem.anon ?? 0, cache: mem.file ?? 0, usage: { usage: usage ?? 0, limit: readNumber(path.join(dir, "memory.max")) ?? 0 } },
      pids: { current: readNumber(path.join(dir, "pids.current")) ?? 0, limit: readNumber(path.join(dir, "pids.max")) ?? 0 },
    };
  }
  const memDir = path.join(root, "memory", rel);
  const cpuDir = path.join(root, "cpuacct", rel);
  if (!fs.existsSync(memDir) && !fs.existsSync(cpuDir)) return null;
  const mem = readKeyed(path.join(memDir, "memory.stat"));
  const pidsDir = path.join(root, "pids", rel);
  return {
    cpu: {
      usage: {
        total: readNumber(path.join(cpuDir, "cpuacct.usage")) ?? 0,
        user: readNumber(path.join(cpuDir, "cpuacct.usage_user")) ?? 0,
        kernel: readNumber(path.join(cpuDir, "cpuacct.usage_sys")) ?? 0,
      },
    },
    memory: {
      rss: mem.rss ?? 0,
      cache: mem.cache ?? 0,
      totalRss: mem.total_rss ?? 0,
      totalCache: mem.total_cache ?? 0,
      hierarchicalMemoryLimit: mem.hierarchical_memory_limit ?? 0,
      usage: {
        usage: readNumber(path.join(memDir, "memory.usage_in_bytes")) ?? 0,
        max: readNumber(path.join(memDir, "memory.max_usage_in_bytes")) ?? 0,
        limit: readNumber(path.join(memDir, "memory.limit_in_bytes")) ?? 0,
        failcnt: readNumber(path.join(memDir, "memory.failcnt")) ?? 0,
      },
    },
    pids: { current: readNumber(path.join(pidsDir, "pids.current")) ?? 0, limit: readNumber(path.join(pidsDir, "pids.max")) ?? 0 },
  };
}

/** One process's counters, as a cgroup holding only it would report them. */
export function processMetrics(pid: number): MetricsInit {
  let stat: string;
  let status: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    throw failedPrecondition(`the sandbox's process ${pid} is gone`);
  }
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ns = (ticks: number) => Math.round((ticks / TICKS_PER_SECOND) * 1e9);
  const user = ns(Number(f[11]));
  const kernel = ns(Number(f[12]));
  const rss = Number(f[21]) * PAGE;
  const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 1);
  return { cpu: { usage: { total: user + kernel, user, kernel } }, memory: { rss, usage: { usage: rss } }, pids: { current: threads } };
}
