// The warm agent a parked shim daemon holds (src/hypervisor/factory/held.ts), and the factory's side
// of a parked take, without root: a stand-in agent (a Node process that speaks the lifeline's ADOPT
// and the hybrid-vsock handshake) and a factory of them (test/integration/factory.test.ts runs the
// real ones under containerd's shims).
import { describe, it, expect, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { claimHeld, dropHeld, holdWarmAgent } from "../../src/hypervisor/factory/held";
import { Factory } from "../../src/hypervisor/factory/service";
import { factoryStatus, takeWarmAgent } from "../../src/hypervisor/factory/client";
import type { Warmer } from "../../src/hypervisor/factory/warmer";
import type { FactoryRequest, WarmAgent } from "../../src/hypervisor/factory/protocol";
import { nullLogger } from "../../src/util/logger";
import { processStartTime } from "../../src/util/proc";
import { cgroupParent } from "../../src/util/cgroup";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "held-unit-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// ADOPT on fd 3 is answered ADOPTED; its socket answers CONNECT 1024 with OK, anything else with NO
const AGENT = `
const net = require("net");
const line = new net.Socket({ fd: 3, readable: true, writable: true });
line.on("data", (d) => { if (/^ADOPT /m.test(String(d))) line.write("ADOPTED\\n"); });
line.on("error", () => {});
if (process.argv[1] !== "-") net.createServer((c) => c.once("data", (d) => (String(d) === "CONNECT 1024\\n" ? c.write("OK 1024\\n") : c.end("NO\\n")))).listen(process.argv[1], () => line.write("READY\\n"));
else line.write("READY\\n");
setInterval(() => {}, 1e9);
`;

let n = 0;
const agents: ChildProcess[] = [];
afterEach(() => {
  dropHeld();
  for (const c of agents.splice(0)) c.kill("SIGKILL");
});

/** A stand-in agent in a directory of its own; listen: false for one whose socket nobody serves. */
async function standIn(listen = true): Promise<{ child: ChildProcess; agent: WarmAgent; exited: Promise<void> }> {
  const d = path.join(dir, `a${n++}`);
  fs.mkdirSync(d);
  const socket = path.join(d, "agent.sock");
  const child = spawn(process.execPath, ["-e", AGENT, listen ? socket : "-"], { stdio: ["ignore", "ignore", "inherit", "pipe"] });
  agents.push(child);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  await new Promise<void>((r) => (child.stdio[3] as net.Socket).once("data", () => r()));
  return { child, agent: { pid: child.pid!, startTime: processStartTime(child.pid!)!, socket, runcRoot: path.join(d, "runc"), dir: d }, exited };
}

/** A factory that hands out `agent` to parked takes and records what it was asked. */
async function fakeFactory(agent: WarmAgent | null): Promise<{ socket: string; asked: FactoryRequest[]; close: () => void }> {
  const socket = path.join(dir, `f${n++}.sock`);
  const asked: FactoryRequest[] = [];
  const server = net.createServer((c) =>
    c.once("data", (d) => {
      const req = JSON.parse(String(d)) as FactoryRequest;
      asked.push(req);
      c.end(JSON.stringify(agent && req.op === "take" && req.parked ? { ok: true, agent } : { ok: false, error: "the pool is empty" }) + "\n");
    }),
  );
  await new Promise<void>((r) => server.listen(socket, r));
  return { socket, asked, close: () => server.close() };
}

const fits = (socket: string) => ({ factorySocket: socket, agentRuntime: "host", cgroupParent: cgroupParent() });

describe("an agent a parked daemon holds", () => {
  it("is taken as a parked take, dialled, and claimed whole by a sandbox it fits", async () => {
    const a = await standIn();
    const f = await fakeFactory(a.agent);
    const h = await holdWarmAgent(f.socket, "host", 5_000);
    f.close();
    expect(f.asked).toMatchObject([{ op: "take", kind: "none", agentRuntime: "host", parked: true, pid: process.pid }]);
    expect(h).not.toBeNull();
    expect(h!.conn.destroyed).toBe(false);
    const got = claimHeld(fits(f.socket));
    expect(got).toBe(h);
    // claimed once: nothing left for another claimer
    expect(claimHeld(fits(f.socket))).toBeNull();
    // the claimer's now: nothing dropped later touches it
    dropHeld();
    expect(a.child.exitCode).toBeNull();
    expect(fs.existsSync(a.agent.dir)).toBe(true);
    got!.conn.destroy();
  });

  it("is killed, its directory removed, when the sandbox cannot use it", async () => {
    for (const unfit of [{ agentRuntime: "runc" }, { cgroupParent: "/elsewhere" }, { factorySocket: "/other/factory.sock" }]) {
      const a = await standIn();
      const f = await fakeFactory(a.agent);
      expect(await holdWarmAgent(f.socket, "host", 5_000)).not.toBeNull();
      f.close();
      expect(claimHeld({ ...fits(f.socket), ...unfit })).toBeNull();
      await a.exited;
      expect(fs.existsSync(a.agent.dir)).toBe(false);
      expect(claimHeld(fits(f.socket))).toBeNull();
    }
  });

  it("is not handed to a claimer once it died", async () => {
    const a = await standIn();
    const f = await fakeFactory(a.agent);
    expect(await holdWarmAgent(f.socket, "host", 5_000)).not.toBeNull();
    f.close();
    a.child.kill("SIGKILL");
    await a.exited;
    expect(claimHeld(fits(f.socket))).toBeNull();
  });

  it("dropped (the daemon ends unclaimed): killed, directory and all; dropping nothing is nothing", async () => {
    const a = await standIn();
    const f = await fakeFactory(a.agent);
    expect(await holdWarmAgent(f.socket, "host", 5_000)).not.toBeNull();
    f.close();
    dropHeld();
    await a.exited;
    expect(fs.existsSync(a.agent.dir)).toBe(false);
    expect(() => dropHeld()).not.toThrow();
  });

  it("none when the factory has none; one whose socket does not answer is killed, not held", async () => {
    const empty = await fakeFactory(null);
    expect(await holdWarmAgent(empty.socket, "host", 5_000)).toBeNull();
    empty.close();
    expect(claimHeld(fits(empty.socket))).toBeNull();
    const mute = await standIn(false);
    const f = await fakeFactory(mute.agent);
    expect(await holdWarmAgent(f.socket, "host", 5_000)).toBeNull();
    f.close();
    await mute.exited;
    expect(fs.existsSync(mute.agent.dir)).toBe(false);
    expect(claimHeld(fits(f.socket))).toBeNull();
  });
});

describe("a factory's parked takes", () => {
  it("wait for an agent to get ready, count as held (not handed out), and are never a miss", async () => {
    let ready: (ok: boolean) => void = () => {};
    const booted: number[] = [];
    const warmer: Warmer = {
      kind: "none",
      describe: () => ({ kind: "none", agentRuntime: "host", cgroupParent: "/shimlab" }),
      refuse: () => null,
      async boot(d) {
        fs.mkdirSync(d, { recursive: true });
        const child = spawn(process.execPath, ["-e", AGENT, "-"], { stdio: ["ignore", "ignore", "inherit", "pipe"], detached: true });
        agents.push(child);
        const pid = child.pid!;
        booted.push(pid);
        const startTime = processStartTime(pid) ?? "";
        return {
          child,
          ready: booted.length === 1 ? new Promise<boolean>((r) => (ready = r)) : new Promise<boolean>(() => {}),
          pids: () => [pid],
          handout: () => ({ pid, startTime, socket: path.join(d, "agent.sock"), runcRoot: path.join(d, "runc"), dir: d }),
        };
      },
      stale: () => null,
    };
    const socket = path.join(dir, "parked-f.sock");
    const f = new Factory({ dir: path.join(dir, "parked-factory"), socket, size: 1, agentRuntime: "host", logger: nullLogger, warmer });
    await f.start();
    try {
      // a pod's take finds the pool empty: a miss
      await expect(takeWarmAgent(socket, { kind: "none", agentRuntime: "host", cgroupParent: "/shimlab" })).rejects.toThrow("the pool is empty");
      // a parked daemon's waits for the agent booting
      let got: WarmAgent | null = null;
      const take = takeWarmAgent(socket, { kind: "none", agentRuntime: "host", cgroupParent: "/shimlab", parked: true }, 10_000).then((a) => (got = a));
      await new Promise((r) => setTimeout(r, 200));
      expect(got).toBeNull();
      ready(true);
      await take;
      expect(got!.pid).toBe(booted[0]);
      const st = await factoryStatus(socket);
      expect(st).toMatchObject({ handedOut: 0, held: 1, misses: 1 });
    } finally {
      await f.stop();
    }
  });
});
