// Warm sandboxes (`shimlab factory`, src/hypervisor/factory): a shim whose
// configuration enables the factory takes a booted agent from its pool
// instead of booting one; the pool refills; an agent serves one sandbox; a
// dead warm agent is replaced, not handed out; the factory's death breaks no
// running pod and leaves nothing a new factory does not remove; and without a
// factory (or with an empty pool) sandboxes boot their own, as before.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { missing } from "../helpers/env";
import { useEmulator, withTask } from "../helpers/emulator";
import type { ShimTask } from "../../src/harness/shim-runner";
import { agentsOf, alive } from "../helpers/procs";
import { waitUntil } from "../helpers/cri";
import { expectNoProcessesMentioning } from "../helpers/leaks";
import { REPO_ROOT } from "../../src/harness/containerd";
import { factoryCall, factoryStatus } from "../../src/hypervisor/factory/client";
import type { FactoryStatus } from "../../src/hypervisor/factory/protocol";
import { readVmRecord } from "../../src/hypervisor/rundir";

const skip = missing("root", "runc", "busybox");
const SHIMLAB = path.join(REPO_ROOT, "bin", "shimlab");

describe.skipIf(skip)("warm sandboxes from shimlab factory", () => {
  // a space in it: every path the factory hands out (a held agent's directory on a PARKED line too) may hold one
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab factory-"));
  const socket = path.join(dir, "factory.sock");
  const config = path.join(dir, "shim.toml");
  fs.writeFileSync(config, `[factory]\nenable = true\nsocket = ${JSON.stringify(socket)}\npool_size = 2\n`);
  const fx = useEmulator({ namespace: "fac", env: { ...process.env, SHIMLAB_CONFIG: config } });
  // the same configuration, but Node options the factory's parked daemons were not started with
  const other = useEmulator({ namespace: "fac2", env: { ...process.env, SHIMLAB_CONFIG: config, NODE_OPTIONS: "--max-semi-space-size=2" } });
  // containerd 2.3 over gRPC: the launcher hands `start` to the TypeScript shim, which takes a parked daemon itself
  const v2 = useEmulator({ namespace: "fac3", containerd2: { series: "2.3", protocol: "grpc" }, env: { ...process.env, SHIMLAB_CONFIG: config } });
  const runDir = (id: string) => path.join(fx.emu.dir, "run", "fac", id);

  // its agents' containers go under the emulator's cgroup parent, as the shims' own agents' would
  const factory = (sub: string, ...more: string[]) =>
    execFileSync(SHIMLAB, ["factory", sub, "--config", config, "--dir", dir, ...more], { encoding: "utf8", timeout: 30_000, env: { ...process.env, SHIMLAB_CGROUP_PARENT: fx.emu.cgroupParent } });
  const status = (): Promise<FactoryStatus> => factoryStatus(socket);
  // the JSON records a factory keeps in one of its directories: pooled agents ("pool"), parked daemons ("daemons")
  const records = <T>(sub: string): T[] =>
    fs
      .readdirSync(path.join(dir, sub))
      .filter((f) => f.endsWith(".json"))
      .map((f) => JSON.parse(fs.readFileSync(path.join(dir, sub, f), "utf8")) as T);
  const pooled = () => records<{ pid: number; dir: string }>("pool");

  // the factory's parked shim daemons (src/shim/park.ts), which `start` takes instead of starting Node
  const parked = (): number[] => records<{ pid: number }>("daemons").map((r) => r.pid);
  // the warm agent each parked daemon holds, adopted and dialled (src/hypervisor/factory/held.ts), by daemon
  const heldBy = (): Map<number, { pid: number; dir: string }> =>
    new Map(
      records<{ pid: number; agent?: { pid: number; dir: string } }>("daemons")
        .filter((r) => r.agent)
        .map((r) => [r.pid, r.agent!]),
    );
  /**
   * Runs body with file's modification time at `at`, as if it was rebuilt then, and puts it back
   * after: a bundle left newer than its `.wrapped` is copied into every later daemon's heap (1.2 MB
   * each: util/code-cache.ts), in the tests that follow and in any benchmark run after them.
   */
  const rebuilt = async (file: string, at: Date, body: () => Promise<void>) => {
    const st = fs.statSync(file);
    fs.utimesSync(file, at, at);
    try {
      await body();
    } finally {
      fs.utimesSync(file, st.atimeMs / 1000, st.mtimeMs / 1000);
    }
  };
  const fullPools = async () => {
    const st = await status();
    return st.ready === 2 && st.daemons?.ready === 2;
  };

  beforeAll(() => {
    expect(factory("start")).toMatch(/2\/2 warm host agents ready.*2\/2 parked shim daemons/);
  }, 60_000);

  afterAll(async () => {
    try {
      factory("stop");
    } finally {
      // every agent the factory booted is gone: pooled ones with it, handed-out ones with their shims
      fs.copyFileSync(path.join(dir, "factory.log"), "/tmp/factory-test.log");
      await expectNoProcessesMentioning([dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  const withSandbox = (id: string, args: string[], body: (t: ShimTask, daemon: number) => Promise<void>) => withTask(fx, id, args, body);

  it("a sandbox takes a warm agent instead of booting one (the one its parked daemon held); the pools refill; the agent goes with the sandbox", async () => {
    await waitUntil("full pools", fullPools, 15_000);
    const before = pooled();
    expect(before).toHaveLength(2);
    const daemonsBefore = parked();
    expect(daemonsBefore).toHaveLength(2);
    // each parked daemon holds an agent of its own, none of them pooled
    const held = heldBy();
    expect([...held.keys()].sort()).toEqual([...daemonsBefore].sort());
    for (const a of held.values()) {
      expect(alive(a.pid)).toBe(true);
      expect(before.map((p) => p.pid)).not.toContain(a.pid);
    }
    const s0 = await status();
    let agent = 0;
    let agentDir = "";
    await withSandbox("w1", ["/bin/sh", "-c", "exit 3"], async (t, daemon) => {
      // the shim daemon was a parked one, now where a daemon `start` spawned would be: the
      // launcher's cgroups and niceness, the bundle as its directory, the log fifo as its stderr
      expect(daemonsBefore).toContain(daemon);
      expect(parked()).not.toContain(daemon);
      expect(fs.readFileSync(`/proc/${daemon}/cgroup`, "utf8")).toBe(fs.readFileSync("/proc/self/cgroup", "utf8"));
      expect(os.getPriority(daemon)).toBe(os.getPriority(0));
      expect(fs.readlinkSync(`/proc/${daemon}/cwd`)).toBe(path.join(fx.emu.bundlesDir(), "w1"));
      expect(fs.readlinkSync(`/proc/${daemon}/fd/2`)).toBe(path.join(fx.emu.bundlesDir(), "w1", "log"));
      expect((await status()).daemons!.handedOut).toBe(s0.daemons!.handedOut + 1);
      const rec = readVmRecord(runDir("w1"))!;
      agent = rec.pid;
      agentDir = rec.dirs![0];
      expect(agent).toBe(held.get(daemon)!.pid);
      expect(agentDir).toBe(held.get(daemon)!.dir);
      // no agent of its own: the shim did not boot one; the one it held is in its cgroups now, not the
      // factory's, at its priority
      expect(agentsOf(daemon)).toEqual([]);
      expect(fs.readFileSync(`/proc/${agent}/cgroup`, "utf8")).toBe(fs.readFileSync(`/proc/${daemon}/cgroup`, "utf8"));
      expect(os.getPriority(agent)).toBe(os.getPriority(daemon));
      expect((await t.task.Wait({ id: "w1" }, { timeoutMs: 10_000 })).exitStatus).toBe(3);
      // no take on the pod's path; the daemon parked in its place takes one to hold
      await waitUntil("the pools to refill", fullPools, 15_000);
      const s1 = await status();
      expect(s1.handedOut).toBe(s0.handedOut);
      expect(s1.held).toBe(s0.held! + 1);
      expect(heldBy().get(daemon)).toBeUndefined();
    });
    // the sandbox stops after Delete's answer, and the shim exits after it: the agent, then its directory, go meanwhile
    await waitUntil("the taken agent to exit with its sandbox", () => !alive(agent), 15_000);
    await waitUntil("the taken agent's directory to go with it", () => !fs.existsSync(agentDir), 5_000);
  });

  it("two sandboxes never share an agent", async () => {
    const pids: number[] = [];
    await withSandbox("w2", ["sleep", "30"], async () => {
      pids.push(readVmRecord(runDir("w2"))!.pid);
      await withSandbox("w3", ["sleep", "30"], async () => {
        pids.push(readVmRecord(runDir("w3"))!.pid);
      });
    });
    expect(new Set(pids).size).toBe(2);
  });

  it("a parked daemon that cannot become the shim asked for refuses, and `start` spawns its own", async () => {
    await waitUntil("full pools", fullPools, 15_000);
    const before = parked();
    const held = heldBy();
    const s0 = await status();
    // a containerd whose shims start Node with other options than the factory's daemons were started with
    await withTask(other, "w8", ["/bin/sh", "-c", "exit 4"], async (t, daemon) => {
      expect(before).not.toContain(daemon);
      expect((await t.task.Wait({ id: "w8" }, { timeoutMs: 10_000 })).exitStatus).toBe(4);
    });
    expect((await status()).daemons!.handedOut).toBe(s0.daemons!.handedOut + 1);
    const refused = before.filter((p) => !parked().includes(p));
    expect(refused).toHaveLength(1);
    await waitUntil("the one that refused to exit", () => !alive(refused[0]), 10_000);
    // and the agent it held with it, directory and all: it served no pod, and serves none now
    const agent = held.get(refused[0])!;
    await waitUntil("the agent it held to exit", () => !alive(agent.pid), 10_000);
    expect(fs.existsSync(agent.dir)).toBe(false);
    expect(fs.readFileSync(path.join(dir, "factory.log"), "utf8")).toMatch(/refused a hand-over: NODE_OPTIONS differs/);
  });

  it("parked daemons started before the shim was rebuilt are replaced, never handed out", async () => {
    await waitUntil("full pools", fullPools, 15_000);
    const before = parked();
    const s0 = await status();
    const bundle = path.join(REPO_ROOT, "dist", "bundle", "shim.js");
    await rebuilt(bundle, new Date(Date.now() + 1000), async () => {
      await withSandbox("w9", ["/bin/true"], async (_t, daemon) => {
        expect(before).not.toContain(daemon);
      });
      const s1 = await status();
      expect(s1.daemons!.replaced).toBe(s0.daemons!.replaced + 2);
      expect(s1.daemons!.misses).toBe(s0.daemons!.misses + 1);
      for (const p of before) await waitUntil(`stale daemon ${p} to go`, () => !alive(p), 10_000);
      // their replacements run the bundle as it is now, and are handed out
      await waitUntil("full pools", fullPools, 15_000);
      const fresh = parked();
      await withSandbox("w10", ["/bin/true"], async (_t, daemon) => {
        expect(fresh).toContain(daemon);
      });
    });
    // the bundle as it was: what parked meanwhile is stale now, replaced by the next take
    await withSandbox("w10b", ["/bin/true"], async () => {});
    await waitUntil("full pools", fullPools, 15_000);
  });

  it("a parked daemon whose agent may predate the mock agent's last build is replaced, agent and all", async () => {
    await waitUntil("full pools", fullPools, 15_000);
    const before = parked();
    const held = heldBy();
    const s0 = await status();
    // rebuilt now: what was spawned before it is stale, what is spawned after it fresh
    const entry = path.join(REPO_ROOT, "dist", "bundle", "mock-agent-main.js");
    await rebuilt(entry, new Date(), async () => {
      await withSandbox("w12", ["/bin/true"], async (_t, daemon) => {
        expect(before).not.toContain(daemon);
        // nor an agent any parked daemon held: a stale one is never handed out
        expect([...held.values()].map((a) => a.pid)).not.toContain(readVmRecord(runDir("w12"))!.pid);
      });
      expect((await status()).daemons!.replaced).toBe(s0.daemons!.replaced + 2);
      for (const a of held.values()) await waitUntil(`held agent ${a.pid} to go`, () => !alive(a.pid) && !fs.existsSync(a.dir), 10_000);
      // their replacements hold fresh agents, and are handed out
      await waitUntil("full pools", fullPools, 20_000);
      const fresh = parked();
      await withSandbox("w13", ["/bin/true"], async (_t, daemon) => {
        expect(fresh).toContain(daemon);
      });
    });
  });

  it("containerd 2.x's start, the TypeScript one, takes a parked daemon too", async () => {
    await waitUntil("full pools", fullPools, 15_000);
    const before = parked();
    const held = heldBy();
    await withTask(v2, "w11", ["/bin/sh", "-c", "exit 6"], async (t, daemon) => {
      expect(before).toContain(daemon);
      // its containerd's cgroup parent is not the factory's: the agent the daemon held cannot serve
      // the pod (its containers' cgroups would be elsewhere), so it went, and the pod booted its own
      const dropped = held.get(daemon)!;
      await waitUntil("the held agent to be dropped", () => !alive(dropped.pid), 10_000);
      expect(fs.existsSync(dropped.dir)).toBe(false);
      expect(agentsOf(daemon)).toHaveLength(1);
      expect(fs.readlinkSync(`/proc/${daemon}/cwd`)).toBe(path.join(v2.emu.bundlesDir(), "w11"));
      expect((await t.task.Wait({ id: "w11" }, { timeoutMs: 10_000 })).exitStatus).toBe(6);
    });
  });

  it("a parked daemon handed out that nobody claims exits", async () => {
    await waitUntil("full pools", fullPools, 15_000);
    const held = heldBy();
    const r = await factoryCall(socket, { op: "daemon" });
    expect(r.ok).toBe(true);
    const pid = (r as { daemon: { pid: number } }).daemon.pid;
    const agent = held.get(pid);
    expect(agent).toBeDefined();
    expect(alive(pid)).toBe(true);
    expect(parked()).not.toContain(pid);
    await waitUntil("it to give up on its launcher", () => !alive(pid), 10_000);
    // the agent it held goes with it
    await waitUntil("the agent it held to go", () => !alive(agent!.pid) && !fs.existsSync(agent!.dir), 5_000);
  });

  it("a warm agent that died in the pool is replaced, never handed out", async () => {
    await waitUntil("a full pool", async () => (await status()).ready === 2, 15_000);
    const s0 = await status();
    const victim = pooled()[0].pid;
    process.kill(victim, "SIGKILL");
    await waitUntil("the factory to see it die", async () => (await status()).replaced > s0.replaced, 15_000);
    await waitUntil("its replacement", async () => (await status()).ready === 2, 15_000);
    await withSandbox("w4", ["/bin/true"], async () => {
      expect(readVmRecord(runDir("w4"))!.pid).not.toBe(victim);
    });
  });

  it("the factory's death breaks no running pod; its pooled agents go; a new factory removes what they left", async () => {
    await waitUntil("full pools", fullPools, 15_000);
    const factoryPid = (await status()).pid;
    await withSandbox("w5", ["sleep", "60"], async (t, shim) => {
      const agent = readVmRecord(runDir("w5"))!.pid;
      const pool = pooled();
      expect(pool.map((p) => p.pid)).not.toContain(agent);
      const daemons = parked();
      expect(daemons).not.toContain(shim);
      const held = [...heldBy().values()];
      expect(held).toHaveLength(daemons.length);
      process.kill(factoryPid, "SIGKILL");
      await waitUntil("the factory to die", () => !alive(factoryPid), 15_000);
      // the pooled agents see EOF on their lifelines and exit; the handed-out one lives on
      await waitUntil("the pooled agents to exit", () => pool.every((p) => !alive(p.pid)), 15_000);
      await waitUntil("the parked daemons to exit", () => daemons.every((p) => !alive(p)), 15_000);
      // each with the agent it held, and that agent's directory
      await waitUntil("the agents they held to go", () => held.every((a) => !alive(a.pid) && !fs.existsSync(a.dir)), 5_000);
      await new Promise((r) => setTimeout(r, 600)); // past the adopted agent's poll of its holder
      expect(alive(agent)).toBe(true);
      // the pod still works: an exec, then its task's end
      const st = await t.task.State({ id: "w5" });
      expect(st.status).toBe(2); // RUNNING
      await t.task.Kill({ id: "w5", signal: 9 });
      expect((await t.task.Wait({ id: "w5" }, { timeoutMs: 10_000 })).exitStatus).toBe(137);
    });
    // what the dead factory left (pool records, directories), a new one removes
    expect(pooled().length).toBeGreaterThan(0);
    const left = pooled().map((p) => p.dir);
    factory("start");
    for (const d of left) expect(fs.existsSync(d), d).toBe(false);
    expect(pooled()).toHaveLength(2);
  });

  it("without a factory, or from an empty pool, a sandbox boots its own agent", async () => {
    factory("stop");
    await withSandbox("w6", ["/bin/true"], async (t, daemon) => {
      expect(agentsOf(daemon)).toHaveLength(1);
      expect((await t.task.Wait({ id: "w6" }, { timeoutMs: 10_000 })).exitStatus).toBe(0);
    });
    factory("start", "--size", "0");
    await withSandbox("w7", ["/bin/true"], async (_t, daemon) => {
      expect(agentsOf(daemon)).toHaveLength(1);
    });
    expect((await status()).misses).toBe(1);
    factory("stop");
    factory("start");
  });
});
