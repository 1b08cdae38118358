// The fault interfaces scenarios add: mutants as ttrpc interceptors, toxics
// on the shim→agent link, and the named mutant bundles the runner uses.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Server, Client } from "../../src/ttrpc";
import { Task } from "../../src/gen/containerd.task.v2";
import { parseMutants, MUTANT_INTERCEPTORS } from "../../src/faults/mutants";
import { parseLinkToxics, interposeAgentLink, AGENT_LINK_FAULTS_ENV } from "../../src/faults/agent-link";
import { MUTANTS, mutantOptions } from "../../src/scenarios/mutants";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A Task server answering only State, Wait and Shutdown, behind the given mutants. */
async function taskServer(mutants: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mut-"));
  const sock = path.join(dir, "s.sock");
  const server = new Server();
  for (const m of parseMutants(mutants)) server.use(m.interceptor);
  let shutdowns = 0;
  const exitedAt = { seconds: Math.floor(Date.now() / 1000), nanos: 0 };
  const impl = new Proxy({} as Record<string, unknown>, {
    get: (_t, name) => {
      if (name === "State") return () => ({ id: "c", status: 3, exitStatus: 137, exitedAt });
      if (name === "Wait") return () => ({ exitStatus: 137, exitedAt });
      if (name === "Shutdown") return () => (shutdowns++, {});
      return () => ({});
    },
  });
  server.register(Task, impl as never);
  const l = net.createServer();
  server.serve(l);
  await new Promise<void>((r) => l.listen(sock, r));
  const client = await Client.dial(sock);
  cleanups.push(async () => {
    client.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { task: client.service(Task, { timeoutMs: 1000 }), shutdowns: () => shutdowns };
}

describe("mutant interceptors", () => {
  it("wait-before-stopped makes a fresh exit look RUNNING; wait-exit-zero loses the code", async () => {
    const a = await taskServer("wait-before-stopped");
    expect((await a.task.State({ id: "c" })).status).toBe(2);
    const b = await taskServer("wait-exit-zero");
    expect((await b.task.Wait({ id: "c" })).exitStatus).toBe(0);
    expect((await b.task.State({ id: "c" })).exitStatus).toBe(137);
  });

  it("ignore-shutdown answers without shutting down; delete-never-answers never answers", async () => {
    const a = await taskServer("ignore-shutdown, delete-never-answers");
    await a.task.Shutdown({ id: "c" });
    expect(a.shutdowns()).toBe(0);
    const e = await a.task.Delete({ id: "c" }).catch((x) => x);
    expect(e.codeName).toBe("DeadlineExceeded");
    expect(await a.task.Delete({ id: "c", execId: "e" })).toBeDefined();
  });

  it("refuses unknown names", () => {
    expect(() => parseMutants("nope")).toThrow(/unknown mutant "nope" \(known: wait-before-stopped/);
    expect(Object.keys(MUTANT_INTERCEPTORS).length).toBeGreaterThanOrEqual(4);
  });
});

describe("named mutants for scenario runs", () => {
  it("turn into interceptors, event faults and configuration", () => {
    expect(mutantOptions(["lose-exit", "ignore-shutdown", "no-dial-deadline"])).toEqual({
      mutants: ["ignore-shutdown"],
      eventFaults: [{ action: "drop", topic: "/tasks/exit" }],
      config: { dial_timeout_ms: 600_000 },
    });
    expect(() => mutantOptions(["x"])).toThrow(/unknown mutant "x"/);
    for (const m of Object.values(MUTANTS)) expect(m.bug).toBeTruthy();
  });
});

describe("agent link toxics", () => {
  it("validate each toxic with its index", () => {
    expect(parseLinkToxics('[{"stream":"upstream","spec":{"type":"latency","latency":5}}]')).toHaveLength(1);
    expect(() => parseLinkToxics("{")).toThrow(/not JSON/);
    expect(() => parseLinkToxics('[{"stream":"up","spec":{"type":"latency","latency":5}}]')).toThrow(/\[0\]: stream must be/);
  });

  it("put a proxy in front of the agent's socket only when configured", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "link-"));
    const up = path.join(dir, "agent.sock");
    const srv = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => srv.listen(up, r));
    expect(await interposeAgentLink({}, up, path.join(dir, "p.sock"))).toBeNull();
    const p = await interposeAgentLink({ [AGENT_LINK_FAULTS_ENV]: '[{"stream":"downstream","spec":{"type":"latency","latency":100}}]' }, up, path.join(dir, "p.sock"));
    const c = net.createConnection(p!.o.listen);
    const t0 = performance.now();
    const echoed = await new Promise<string>((r) => {
      c.on("data", (d) => r(d.toString()));
      c.write("CONNECT 1024\n");
    });
    expect(echoed).toBe("CONNECT 1024\n");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
    c.destroy();
    await p!.stop();
    await new Promise((r) => srv.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
