// CPU time spent by containerd and everything it starts (shims, the mock
// agent, runc; not the containers, which runc moves to their own cgroups),
// from a cgroup (v1 cpuacct or v2 cpu.stat) the benchmark puts containerd in.
// Unlike wall time it hardly moves when other work shares the machine, so it
// is the steadier figure on a busy host.
import fs from "node:fs";

const V1 = "/sys/fs/cgroup/cpuacct";
const V2 = fs.existsSync("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";

export class CpuAccount {
  constructor(name) {
    this.v1 = fs.existsSync(`${V1}/cpuacct.usage`);
    this.dir = `${this.v1 ? V1 : V2}/${name}`;
    fs.mkdirSync(this.dir, { recursive: true });
  }

  /** Moves pid (and so its future children) into the cgroup. */
  add(pid) {
    fs.writeFileSync(`${this.dir}/cgroup.procs`, String(pid));
  }

  /** Total CPU time so far, ms. */
  usageMs() {
    if (this.v1) return Number(fs.readFileSync(`${this.dir}/cpuacct.usage`, "utf8")) / 1e6;
    const m = /^usage_usec (\d+)/m.exec(fs.readFileSync(`${this.dir}/cpu.stat`, "utf8"));
    return Number(m?.[1] ?? NaN) / 1e3;
  }

  /** Removes the cgroup once it is empty (its processes gone). */
  remove() {
    try {
      fs.rmdirSync(this.dir);
    } catch {}
  }
}
