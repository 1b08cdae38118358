// What shimlab does for CRI-O that containerd never needed: Stats every entry
// CRI-O dereferences unchecked, oom_score_adj a process may not lower, and a
// private CRI-O configuration that keeps every path under its directory.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { statsToMetrics } from "../../src/shim/metrics";
import { Metrics } from "../../src/gen/io.containerd.cgroups.v1";
import { canLowerOomScore, clampOomScoreAdj } from "../../src/mock-agent/oom-score";
import { oomClampingRunc, writeCrioConfig } from "../../src/harness/cri/crio-config";
import { readCgroupStats } from "../../src/mock-agent/runtime/cgroup-stats";
import { statsFromRunc } from "../../src/mock-agent/runtime/runc";

describe("Stats for CRI-O's runtime_vm (metricsV1ToCgroupStats)", () => {
  // Every pointer CRI-O 1.34 reads without a nil check.
  const derefs = (m: ReturnType<typeof Metrics.decode>) => [
    m.memory?.usage,
    m.memory?.kernel,
    m.memory?.kernelTcp,
    m.memory?.swap,
    m.cpu?.usage,
    m.cpu?.throttling,
    m.pids,
  ];

  it("carries every entry even when the agent reported no cgroup stats", () => {
    const m = Metrics.decode(Metrics.encode(statsToMetrics({ networkStats: [] } as never)));
    expect(derefs(m).every((x) => x !== undefined)).toBe(true);
  });

  it("keeps the agent's numbers and zeroes only what it lacks", () => {
    const m = Metrics.decode(
      Metrics.encode(
        statsToMetrics({
          cgroupStats: {
            memoryStats: { cache: 5, usage: { usage: 1000, maxUsage: 2000, failcnt: 0, limit: 4096 }, useHierarchy: false, stats: { rss: 7 } },
            pidsStats: { current: 3, limit: 10 },
          },
          networkStats: [],
        } as never),
      ),
    );
    expect(derefs(m).every((x) => x !== undefined)).toBe(true);
    expect(m.memory?.usage?.usage).toBe(1000);
    expect(m.memory?.usage?.limit).toBe(4096);
    expect(m.memory?.rss).toBe(7);
    expect(m.memory?.cache).toBe(5);
    expect(m.pids?.current).toBe(3);
    expect(m.memory?.kernelTcp?.usage).toBe(0);
    expect(m.cpu?.usage?.total).toBe(0);
  });
});

describe("oom_score_adj without CAP_SYS_RESOURCE", () => {
  it("reads the capability from CapEff", () => {
    expect(canLowerOomScore("CapEff:\t000001ffffffffff\n")).toBe(true);
    expect(canLowerOomScore("CapEff:\t000001fffeffffff\n")).toBe(false);
    expect(canLowerOomScore("no caps line\n")).toBe(false);
  });

  it("raises only a value below the process's own, and only where it may not lower it", () => {
    expect(clampOomScoreAdj(-998, 0, false)).toBe(0);
    expect(clampOomScoreAdj(-998, 0, true)).toBe(-998);
    expect(clampOomScoreAdj(500, 0, false)).toBe(500);
    expect(clampOomScoreAdj(undefined, 0, false)).toBeUndefined();
    expect(clampOomScoreAdj(-998, -999, false)).toBe(-998);
  });
});

describe("a private CRI-O's configuration", () => {
  let dir = "";
  afterEach(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  const peer = { version: "v1.34.0", crio: "/x/crio", pinns: "/x/pinns", conmon: "/usr/bin/conmon", runc: "/x/runc" };

  it("keeps every path under its directory and names shimlab a vm runtime", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "crio-unit-"));
    const f = writeCrioConfig({ dir, peer, pauseImage: "registry.k8s.io/pause:3.6", shimlabHandlers: { shimlab: "", "shimlab-qemu": "/etc/q.toml" }, shimBinary: "/x/shim", mirror: { registries: ["registry.k8s.io"], host: "127.0.0.1:5000" } });
    const conf = fs.readFileSync(f.config, "utf8");
    for (const key of ["root", "runroot", "log_dir", "version_file", "clean_shutdown_file", "listen", "namespaces_dir", "container_exits_dir", "container_attach_socket_dir", "network_dir", "signature_policy"]) {
      const m = new RegExp(`^${key} = "([^"]*)"$`, "m").exec(conf);
      expect(m, key).not.toBeNull();
      expect(m![1].startsWith(dir + "/"), `${key} = ${m![1]}`).toBe(true);
    }
    expect(conf).toMatch(/\[crio\.runtime\.runtimes\.shimlab\]\nruntime_path = "\/x\/shim"\nruntime_type = "vm"/);
    expect(conf).toMatch(/\[crio\.runtime\.runtimes\.shimlab-qemu\][^[]*runtime_config_path = "\/etc\/q\.toml"/);
    expect(conf).not.toMatch(/\[crio\.runtime\.runtimes\.shimlab\][^[]*runtime_config_path/);
    expect(fs.readFileSync(f.registriesConf, "utf8")).toContain('[[registry.mirror]]\nlocation = "127.0.0.1:5000"\ninsecure = true');
    expect(() => writeCrioConfig({ dir, peer, pauseImage: "p", shimlabHandlers: { runc: "" } })).toThrow(/not runc/);
  });

  it("clamps a lower oomScoreAdj in the bundle before running runc, and leaves others alone", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "crio-unit-"));
    // A stand-in runc that prints the value it was given.
    const fake = path.join(dir, "fake-runc");
    fs.writeFileSync(fake, `#!/bin/sh\ngrep -o '"oomScoreAdj": *-\\{0,1\\}[0-9]*' "$3/config.json"\n`, { mode: 0o755 });
    const wrapper = oomClampingRunc(dir, fake);
    const own = Number(fs.readFileSync("/proc/self/oom_score_adj", "utf8"));
    const run = (adj: number) => {
      const b = path.join(dir, `b${adj}`);
      fs.mkdirSync(b, { recursive: true });
      fs.writeFileSync(path.join(b, "config.json"), JSON.stringify({ process: { oomScoreAdj: adj, args: ["x"] } }, null, 2));
      return execFileSync(wrapper, ["create", "--bundle", b, "id"], { encoding: "utf8" }).trim();
    };
    expect(run(own - 5)).toBe(`"oomScoreAdj": ${own}`);
    expect(run(own + 5)).toBe(`"oomScoreAdj": ${own + 5}`);
  });
});

describe("a stopped container's stats from its cgroup (runc events refuses it)", () => {
  let root = "";
  afterEach(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  };

  it("reads cgroup v1 controllers as runc events does", () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "cg-v1-"));
    const cg = "shimlab/pod/c1";
    write(path.join(root, "cpuacct", cg, "cpuacct.usage"), "5000\n");
    write(path.join(root, "cpuacct", cg, "cpuacct.usage_percpu"), "3000 2000 \n");
    write(path.join(root, "cpuacct", cg, "cpuacct.stat"), "user 2\nsystem 1\n");
    write(path.join(root, "cpu", cg, "cpu.stat"), "nr_periods 4\nnr_throttled 1\nthrottled_time 77\n");
    write(path.join(root, "memory", cg, "memory.usage_in_bytes"), "4096\n");
    write(path.join(root, "memory", cg, "memory.limit_in_bytes"), "9223372036854771712\n");
    write(path.join(root, "memory", cg, "memory.stat"), "cache 12\nrss 34\ntotal_inactive_file 5\n");
    write(path.join(root, "pids", cg, "pids.current"), "0\n");
    write(path.join(root, "pids", cg, "pids.max"), "max\n");
    const d = readCgroupStats(`/${cg}`, root) as any;
    expect(d.cpu.usage).toEqual({ total: 5000, percpu: [3000, 2000], kernel: 1e7, user: 2e7 });
    expect(d.cpu.throttling).toEqual({ periods: 4, throttledPeriods: 1, throttledTime: 77 });
    expect(d.memory.usage.usage).toBe(4096);
    expect(d.memory.cache).toBe(12);
    expect(d.memory.raw.rss).toBe(34);
    expect(d.pids).toEqual({ current: 0, limit: 0 });
    // And what the agent makes of it carries the numbers through.
    const s = statsFromRunc(d);
    expect(s.memoryStats?.usage?.usage).toBe(4096);
    expect(s.cpuStats?.cpuUsage?.totalUsage).toBe(5000);
  });

  it("reads the cgroup v2 tree, and says nothing for a cgroup that is gone", () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "cg-v2-"));
    write(path.join(root, "cgroup.controllers"), "cpu memory pids\n");
    const cg = "shimlab/pod/c2";
    write(path.join(root, cg, "cpu.stat"), "usage_usec 7\nuser_usec 4\nsystem_usec 3\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n");
    write(path.join(root, cg, "memory.current"), "8192\n");
    write(path.join(root, cg, "memory.max"), "max\n");
    write(path.join(root, cg, "memory.stat"), "anon 100\nfile 200\n");
    write(path.join(root, cg, "pids.current"), "1\n");
    const d = readCgroupStats(cg, root) as any;
    expect(d.cpu.usage.total).toBe(7000);
    expect(d.memory.usage).toMatchObject({ usage: 8192, limit: 0 });
    expect(d.memory.cache).toBe(200);
    expect(d.pids.current).toBe(1);
    expect(readCgroupStats("shimlab/pod/gone", root)).toBeNull();
  });
});
