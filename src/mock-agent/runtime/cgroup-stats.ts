// A stopped container's cgroup read directly. `runc events --stats` refuses a
// container that is not running, yet its cgroup stays until `runc delete`,
// and runc's shim (cg.Stat) and Kata's agent (its cgroup manager) both answer
// Stats from it then. CRI-O asks for the stats of every container it still
// believes running, and one refused answer crashes it (a nil entry in
// ListPodSandboxMetrics): so a container that has just exited is read here,
// in the shape `runc events --stats` prints (statsFromRunc reads both).
import fs from "node:fs";
import path from "node:path";

type Raw = Record<string, number>;

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return null;
  }
}

function num(file: string): number {
  const v = read(file);
  if (v === null || v === "max") return 0;
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

/** "key value" lines (memory.stat, cpu.stat, cpuacct.stat). */
function keyed(file: string): Raw {
  const out: Raw = {};
  for (const line of (read(file) ?? "").split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
  }
  return out;
}

/** USER_HZ: cpuacct.stat counts ticks; runc turns them into nanoseconds the same way. */
const NS_PER_TICK = 1e9 / 100;

/** The container's cgroup (cgroupsPath as given to runc) under root, as `runc events --stats`' data. */
export function readCgroupStats(cgroupsPath: string, root = "/sys/fs/cgroup"): Record<string, unknown> | null {
  const rel = cgroupsPath.replace(/^\/+/, "");
  if (fs.existsSync(path.join(root, "cgroup.controllers"))) {
    const d = path.join(root, rel);
    if (!fs.existsSync(d)) return null;
    const cpu = keyed(path.join(d, "cpu.stat"));
    const mem = keyed(path.join(d, "memory.stat"));
    return {
      cpu: {
        usage: { total: (cpu.usage_usec ?? 0) * 1000, kernel: (cpu.system_usec ?? 0) * 1000, user: (cpu.user_usec ?? 0) * 1000, percpu: [] },
        throttling: { periods: cpu.nr_periods ?? 0, throttledPeriods: cpu.nr_throttled ?? 0, throttledTime: (cpu.throttled_usec ?? 0) * 1000 },
      },
      memory: {
        cache: mem.file ?? 0,
        usage: { usage: num(path.join(d, "memory.current")), max: num(path.join(d, "memory.peak")), limit: num(path.join(d, "memory.max")), failcnt: 0 },
        swap: { usage: num(path.join(d, "memory.swap.current")), limit: num(path.join(d, "memory.swap.max")), max: 0, failcnt: 0 },
        raw: mem,
      },
      pids: { current: num(path.join(d, "pids.current")), limit: num(path.join(d, "pids.max")) },
    };
  }
  const at = (controller: string, file: string) => path.join(root, controller, rel, file);
  if (!fs.existsSync(path.join(root, "memory", rel)) && !fs.existsSync(path.join(root, "cpuacct", rel))) return null;
  const entry = (prefix: string) => ({
    usage: num(at("memory", `${prefix}.usage_in_bytes`)),
    max: num(at("memory", `${prefix}.max_usage_in_bytes`)),
    failcnt: num(at("memory", `${prefix}.failcnt`)),
    limit: num(at("memory", `${prefix}.limit_in_bytes`)),
  });
  const raw = keyed(at("memory", "memory.stat"));
  const ticks = keyed(at("cpuacct", "cpuacct.stat"));
  const thr = keyed(at("cpu", "cpu.stat"));
  return {
    cpu: {
      usage: {
        total: num(at("cpuacct", "cpuacct.usage")),
        percpu: (read(at("cpuacct", "cpuacct.usage_percpu")) ?? "").split(/\s+/).filter(Boolean).map(Number),
        kernel: (ticks.system ?? 0) * NS_PER_TICK,
        user: (ticks.user ?? 0) * NS_PER_TICK,
      },
      throttling: { periods: thr.nr_periods ?? 0, throttledPeriods: thr.nr_throttled ?? 0, throttledTime: thr.throttled_time ?? 0 },
    },
    memory: { cache: raw.cache ?? 0, usage: entry("memory"), swap: entry("memory.memsw"), kernel: entry("memory.kmem"), raw },
    pids: { current: num(at("pids", "pids.current")), limit: num(at("pids", "pids.max")) },
  };
}
