// A warm guest agent sent the calls of a pod's path before it is pooled (src/hypervisor/factory/
// rehearse-calls.ts): every one refused by the agent itself, nothing changed by any of them. The
// mock agent runs in this process as a guest's (its runtime and its `ip` fakes that record what
// reaches them), served over ttrpc on a unix socket, dialled by the client a shim uses.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Server } from "../../src/ttrpc/server";
import { AgentService, Health } from "../../src/gen/grpc";
import { MockAgent } from "../../src/mock-agent/agent";
import { GuestNetwork } from "../../src/mock-agent/network";
import { AgentClient, type AgentApi } from "../../src/agent/client";
import { UnixTransport } from "../../src/agent/transport/unix";
import { rehearseCalls } from "../../src/hypervisor/factory/rehearse-calls";
import { ErrdefsError } from "../../src/errdefs";
import { nullLogger } from "../../src/util/logger";
import type { Runtime } from "../../src/mock-agent/runtime/types";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

async function guestAgent() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-rehearse-calls-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const runtimeCalls: string[] = [];
  // every method of the runtime records its call and fails: none may be reached
  const runtime = new Proxy({ name: "crun", isolated: true } as Record<string | symbol, unknown>, {
    get: (t, k) =>
      k in t
        ? t[k]
        : (...a: unknown[]) => {
            runtimeCalls.push(String(k));
            throw new Error(`runtime ${String(k)}(${a.length} args) called`);
          },
  }) as unknown as Runtime;
  const ipCommands: string[][] = [];
  const network = new GuestNetwork({
    sysNet: path.join(dir, "sys-class-net"),
    procSys: path.join(dir, "proc-sys"),
    batch: async (cmds) => (ipCommands.push(...cmds.map((c) => c.args)), cmds.map(() => "")),
  });
  const agent = new MockAgent({ runtime, stateDir: path.join(dir, "state"), logger: nullLogger, guest: true, network, onDestroyed: () => {} });
  const server = new Server();
  server.register(AgentService, agent.service);
  server.register(Health, agent.health);
  const sock = path.join(dir, "agent.sock");
  const l = net.createServer((s) => server.handle(s));
  await new Promise<void>((r) => l.listen(sock, r));
  cleanups.push(() => l.close());
  const client = await AgentClient.connect(new UnixTransport(sock), { timeoutMs: 5_000 });
  cleanups.push(() => client.close());
  return { client, runtimeCalls, ipCommands, dir };
}

describe("a warm agent's rehearsal of a pod's calls", () => {
  it("sends each call of a pod's path; the agent refuses every one and changes nothing", async () => {
    const a = await guestAgent();
    const refused = await rehearseCalls(a.client.agent);
    expect(refused).toEqual({
      CreateSandbox: "InvalidArgument",
      UpdateInterface: "InvalidArgument",
      UpdateRoutes: "InvalidArgument",
      CreateContainer: "FailedPrecondition",
      "CreateContainer (sandbox)": "FailedPrecondition",
      StartContainer: "NotFound",
      ExecProcess: "NotFound",
      WaitProcess: "NotFound",
      RemoveContainer: "NotFound",
    });
    // nothing reached the runtime; the network was only read
    expect(a.runtimeCalls).toEqual([]);
    expect(a.ipCommands.every((c) => c.includes("show"))).toBe(true);
    expect(fs.existsSync(path.join(a.dir, "state", "containers"))).toBe(false);
    // no sandbox was made: a pod's CreateSandbox is still the first
    await expect(a.client.agent.CreateSandbox({ sandboxId: "pod", hostname: "", storages: [], sandboxPidns: false })).resolves.toEqual({});
    await expect(a.client.agent.CreateSandbox({ sandboxId: "pod", hostname: "", storages: [], sandboxPidns: false })).rejects.toThrow(/already created/);
  });

  it("an agent that does not refuse a call, or that is not there to answer, fails it", async () => {
    const a = await guestAgent();
    const lax = new Proxy(a.client.agent, { get: (t, k) => (k === "StartContainer" ? async () => ({}) : t[k as keyof AgentApi]) });
    await expect(rehearseCalls(lax)).rejects.toThrow("the agent did not refuse StartContainer: its state is no longer known");
    const gone = new Proxy(a.client.agent, {
      get: (t, k) => (k === "UpdateRoutes" ? async () => Promise.reject(new ErrdefsError("Unavailable", "ttrpc: closed")) : t[k as keyof AgentApi]),
    });
    await expect(rehearseCalls(gone)).rejects.toThrow("ttrpc: closed");
  });
});
