// The factory's configuration and its wire, without root or agents: [factory]
// in the shim's TOML, and what a factory answers to requests it must refuse
// (its pool is empty here; test/integration/factory.test.ts hands agents out).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../src/shim/config";
import { Factory } from "../../src/hypervisor/factory/service";
import { factoryCall, factoryStatus, takeWarmAgent } from "../../src/hypervisor/factory/client";
import { DEFAULT_FACTORY_SOCKET } from "../../src/hypervisor/factory/protocol";
import { nullLogger } from "../../src/util/logger";
import { processStartTime } from "../../src/util/proc";
import { spawn } from "node:child_process";
import type { Warmer, WarmBoot } from "../../src/hypervisor/factory/warmer";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "factory-unit-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function config(text: string) {
  const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.toml`);
  fs.writeFileSync(f, text);
  return loadConfig(f, {});
}

describe("[factory] in the shim's configuration", () => {
  it("is off unless enabled, with Kata-like defaults", () => {
    expect(config("").factory).toEqual({ enable: false, socket: DEFAULT_FACTORY_SOCKET, poolSize: 2, daemonPoolSize: 2 });
    expect(config('[factory]\nenable = true\nsocket = "/x/f.sock"\npool_size = 5\n').factory).toEqual({ enable: true, socket: "/x/f.sock", poolSize: 5, daemonPoolSize: 5 });
    expect(config("[factory]\npool_size = 1\ndaemon_pool_size = 0\n").factory).toMatchObject({ poolSize: 1, daemonPoolSize: 0 });
  });

  it("refuses what it cannot honour, as InvalidArgument naming the key", () => {
    expect(() => config("[factory]\nenable = 1\n")).toThrow(/factory\.enable must be true or false/);
    expect(() => config('[factory]\nsocket = "rel.sock"\n')).toThrow(/factory\.socket must be an absolute path/);
    expect(() => config("[factory]\npool_size = 65\n")).toThrow(/factory\.pool_size must be an integer from 0 to 64/);
    expect(() => config("[factory]\ndaemon_pool_size = -1\n")).toThrow(/factory\.daemon_pool_size must be an integer from 0 to 64/);
    expect(() => config("[factory]\nvm_cache_number = 2\n")).toThrow(/factory\.vm_cache_number: unknown key/);
  });

  it("enables warm VMs for hypervisor = \"qemu\" too: the factory's warmer is the driver's", () => {
    // (QEMU's warmer is loaded with its driver, by require: test/integration/factory-qemu.test.ts builds it)
    const c = config('hypervisor = "qemu"\n[factory]\nenable = true\n');
    expect(c.factory.enable).toBe(true);
    expect(c.hypervisorKind).toBe("qemu");
    expect(config("[factory]\nenable = true\n").warmer({ logger: nullLogger }).kind).toBe("none");
  });
});

describe("a factory's answers", () => {
  const socket = path.join(dir, "f.sock");
  let f: Factory;
  beforeAll(async () => {
    f = new Factory({ dir: path.join(dir, "factory"), socket, size: 0, agentRuntime: "host", logger: nullLogger, env: {} });
    await f.start();
  });
  afterAll(() => f.stop());

  const raw = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const c = net.createConnection({ path: socket }, () => c.write(text));
      let out = "";
      c.on("data", (d) => (out += d));
      c.on("end", () => resolve(out));
      c.on("error", reject);
    });

  it("status: its pool and counts", async () => {
    const st = await factoryStatus(socket);
    expect(st).toMatchObject({ pid: process.pid, kind: "none", agentRuntime: "host", size: 0, ready: 0, booting: 0 });
  });

  it("refuses bad requests with an error, and goes on serving", async () => {
    expect(JSON.parse(await raw("not json\n"))).toEqual({ ok: false, error: "request is not JSON" });
    expect(JSON.parse(await raw('{"op":"fly"}\n'))).toEqual({ ok: false, error: 'unknown op "fly"' });
    expect(JSON.parse(await raw("x".repeat(5000)))).toEqual({ ok: false, error: "request too long" });
    const me = { pid: process.pid, startTime: processStartTime(process.pid)!, cgroupParent: "/shimlab" };
    expect(await factoryCall(socket, { op: "take", kind: "qemu", agentRuntime: "host", ...me })).toEqual({ ok: false, error: "this factory keeps host agents, not qemu" });
    expect(await factoryCall(socket, { op: "take", kind: "none", agentRuntime: "runc", ...me })).toEqual({ ok: false, error: "this factory's agents run containers with host, not runc" });
    expect(await factoryCall(socket, { op: "take", kind: "none", agentRuntime: "host", ...me, cgroupParent: "/other" })).toEqual({ ok: false, error: "this factory's agents put containers under /shimlab, not /other" });
    expect(await factoryCall(socket, { op: "take", kind: "none", agentRuntime: "host", ...me, startTime: "1" })).toEqual({ ok: false, error: "the taker is not a live process" });
    expect((await factoryStatus(socket)).misses).toBe(0);
    // parked shim daemons only from a factory told to keep them (the CLI's, with the bundle built)
    expect(await factoryCall(socket, { op: "daemon" })).toEqual({ ok: false, error: "this factory parks no shim daemons" });
  });

  it("an empty pool is a miss, which the taker hears as an error to boot its own", async () => {
    await expect(takeWarmAgent(socket, { kind: "none", agentRuntime: "host", cgroupParent: "/shimlab" })).rejects.toThrow("the pool is empty");
    expect((await factoryStatus(socket)).misses).toBe(1);
  });

  it("a second factory on a live socket is refused; no factory is an error to the taker", async () => {
    const g = new Factory({ dir: path.join(dir, "factory2"), socket, size: 0, agentRuntime: "host", logger: nullLogger });
    await expect(g.start()).rejects.toThrow(/a factory already serves/);
    await expect(takeWarmAgent(path.join(dir, "none.sock"), { kind: "none", agentRuntime: "host" })).rejects.toThrow(/no factory at/);
  });
});

/**
 * A pool of stand-ins for agents: a shell that answers the lifeline's ADOPT as an agent does, then
 * sleeps. Enough for the factory's pool, take and refill, with no agent to boot.
 */
function standInWarmer(boots: number[], refillDelayMs?: number): Warmer {
  return {
    kind: "none",
    describe: () => ({ kind: "none", agentRuntime: "host", cgroupParent: "/shimlab" }),
    refuse: () => null,
    stale: () => null,
    ...(refillDelayMs === undefined ? {} : { refillDelayMs: () => refillDelayMs }),
    async boot(d): Promise<WarmBoot> {
      boots.push(performance.now());
      fs.mkdirSync(d, { recursive: true });
      const child = spawn("/bin/sh", ["-c", "read -r _ <&3; echo ADOPTED >&3; exec sleep 30"], { stdio: ["ignore", "ignore", "ignore", "pipe"] });
      const pid = child.pid!;
      return { child, ready: Promise.resolve(true), pids: () => [pid], handout: () => ({ pid, startTime: processStartTime(pid) ?? "", socket: path.join(d, "agent.sock"), runcRoot: "", dir: d }) };
    },
  };
}

describe("a factory's refill after a take", () => {
  async function refillAfterTake(name: string, refillDelayMs?: number): Promise<number> {
    const boots: number[] = [];
    const socket = path.join(dir, `${name}.sock`);
    const f = new Factory({ dir: path.join(dir, name), socket, size: 1, agentRuntime: "host", logger: nullLogger, warmer: standInWarmer(boots, refillDelayMs) });
    await f.start();
    try {
      for (let i = 0; i < 200 && (await factoryStatus(socket)).ready < 1; i++) await new Promise((r) => setTimeout(r, 10));
      const taken = performance.now();
      const a = await takeWarmAgent(socket, { kind: "none", agentRuntime: "host", cgroupParent: "/shimlab" });
      process.kill(a.pid, "SIGKILL");
      for (let i = 0; i < 300 && boots.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(boots.length).toBe(2);
      return boots[1] - taken;
    } finally {
      f.stop();
    }
  }

  it("waits the factory's own delay, or the warmer's when it names one (a TCG VM's pod starting beside the boot)", async () => {
    const own = await refillAfterTake("refill-own");
    expect(own).toBeGreaterThanOrEqual(140);
    expect(own).toBeLessThan(900);
    const warmers = await refillAfterTake("refill-warmer", 1500);
    expect(warmers).toBeGreaterThanOrEqual(1490);
  });
});
