// Port-forwarding into a VM without the VM: the guest agent's
// shimlab.v1.PortForward service (src/mock-agent/port-forward.ts) served over
// real ttrpc on a unix socket, the shim's relay (src/pod/port-relay.ts) as its
// client, a local TCP listener standing in for the pod's redirected loopback,
// and local servers standing in for the guest's. What the netns and iptables
// add is covered by test/integration/cri-portforward.test.ts.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Client, Server, Code, RpcError } from "../../src/ttrpc";
import { toNative } from "../../src/ttrpc/errgrpc";
import { PortForward } from "../../src/gen/shimlab.v1";
import { Health } from "../../src/gen/grpc";
import { GuestPortForward, READ_BUFFER } from "../../src/mock-agent/port-forward";
import { PortRelay, type RelayApi } from "../../src/pod/port-relay";
import type { Logger } from "../../src/util/logger";

interface Logged {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}
function memoryLogger(into: Logged[]): Logger {
  const l: Logger = {
    debug: (msg, fields) => into.push({ level: "debug", msg, fields }),
    info: (msg, fields) => into.push({ level: "info", msg, fields }),
    warn: (msg, fields) => into.push({ level: "warn", msg, fields }),
    error: (msg, fields) => into.push({ level: "error", msg, fields }),
    child: () => l,
  };
  return l;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** A "guest" server on the test's loopback: what a container in the VM would run. */
async function guestServer(onConn: (s: net.Socket) => void): Promise<number> {
  const conns = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    conns.add(s);
    s.on("close", () => conns.delete(s));
    s.on("error", () => {});
    onConn(s);
  });
  const port = await listen(srv);
  cleanups.push(() => {
    for (const s of conns) s.destroy();
    return new Promise((r) => srv.close(r));
  });
  return port;
}

/** A port nothing listens on: bound, then closed. */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  const port = await listen(srv);
  await new Promise((r) => srv.close(r));
  return port;
}

interface Rig {
  agent: GuestPortForward;
  api: ReturnType<Client["service"]> & RelayApi;
  relay: PortRelay;
  logs: Logged[];
  /** Connects "to the pod's localhost:<port>": through the relay to the guest server on that port. */
  connect(port: number): Promise<net.Socket>;
  /** The relay's ends of those connections, in order. */
  accepted: net.Socket[];
}

async function rig(o: { serve?: boolean; wrap?: (api: RelayApi) => RelayApi } = {}): Promise<Rig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-pf-"));
  const sockPath = path.join(dir, "agent.sock");
  const logs: Logged[] = [];
  const agent = new GuestPortForward({ logger: memoryLogger([]) });
  const server = new Server();
  // Health alone stands in for a kata-agent, which has no such service.
  server.register(Health, { Check: () => ({ status: 1 }), Version: () => ({ grpcVersion: "", agentVersion: "kata" }) });
  if (o.serve !== false) server.register(PortForward, agent.service);
  const l = net.createServer();
  server.serve(l);
  await new Promise<void>((r) => l.listen(sockPath, r));
  const client = await Client.dial(sockPath);
  const raw = client.service(PortForward) as unknown as RelayApi;
  const api = (o.wrap ? o.wrap(raw) : raw) as Rig["api"];
  // The relay gets the agent's statuses as errdefs kinds, as the shim's AgentClient gives them.
  const calls = api as unknown as Record<string, (req: unknown) => Promise<unknown>>;
  const native = Object.fromEntries(
    Object.keys(PortForward.methods).map((name) => [name, (req: unknown) => calls[name](req).catch((e) => Promise.reject(toNative(e)))]),
  ) as unknown as RelayApi;
  const relay = new PortRelay(native, memoryLogger(logs));
  cleanups.push(async () => {
    relay.close();
    agent.close();
    client.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  // The pod's loopback: in the shim one socket in the pod's namespace behind a REDIRECT rule, the
  // port read back from netfilter; here a listener per connection that knows the port it stands for.
  const accepted: net.Socket[] = [];
  const connect = async (port: number) => {
    const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
      accepted.push(s);
      relay.handle(s, port);
    });
    const frontPort = await listen(front);
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ port: frontPort, host: "127.0.0.1", allowHalfOpen: true }, () => {
          s.off("error", reject);
          s.on("error", () => {}); // a test that expects one listens itself
          resolve(s);
        });
        s.once("error", reject);
      });
    } finally {
      front.close();
    }
  };
  return { agent, api, relay, logs, connect, accepted };
}

/** Everything the socket sends until its end, or its error. */
function readAll(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("end", () => resolve(Buffer.concat(chunks)));
    s.on("error", reject);
  });
}

function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => (cond() ? resolve() : Date.now() > until ? reject(new Error(`timed out waiting for ${what}`)) : setTimeout(tick, 10));
    tick();
  });
}

/** Resolves when n stops growing for quietMs: the pipe is full. */
async function stalled(n: () => number, quietMs = 400, ms = 20_000): Promise<number> {
  const until = Date.now() + ms;
  let last = -1;
  let since = Date.now();
  for (;;) {
    const v = n();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return v;
    if (Date.now() > until) throw new Error(`never stalled (at ${v})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

describe("the guest agent's PortForward service: bad input", () => {
  let r: Rig;
  beforeEach(async () => {
    r = await rig();
  });

  it("a port outside 1..65535 is InvalidArgument, and nothing is dialled", async () => {
    for (const port of [0, 65536, 70000]) {
      const e = await r.api.Dial({ port }).catch((x: RpcError) => x);
      expect(e).toBeInstanceOf(RpcError);
      expect((e as RpcError).code).toBe(Code.InvalidArgument);
      expect((e as RpcError).message).toContain(`port ${port}: want 1..65535`);
    }
    expect(r.agent.open).toBe(0);
  });

  it("a port nothing listens on is Unavailable (connection refused)", async () => {
    const port = await deadPort();
    const e = (await r.api.Dial({ port }).catch((x: RpcError) => x)) as RpcError;
    expect(e.code).toBe(Code.Unavailable);
    expect(e.message).toMatch(new RegExp(`dial 127\\.0\\.0\\.1:${port} in the guest: .*ECONNREFUSED`));
    expect(r.agent.open).toBe(0);
  });

  it("an unknown stream id is NotFound on every call, naming the id", async () => {
    const calls: [string, () => Promise<unknown>][] = [
      ["Read", () => r.api.Read({ streamId: 999, len: 10 })],
      ["Write", () => r.api.Write({ streamId: 999, data: Buffer.from("x") })],
      ["CloseWrite", () => r.api.CloseWrite({ streamId: 999 })],
      ["Close", () => r.api.Close({ streamId: 999, reset: false })],
    ];
    for (const [name, call] of calls) {
      const e = (await call().catch((x: RpcError) => x)) as RpcError;
      expect(e, name).toBeInstanceOf(RpcError);
      expect(e.code, name).toBe(Code.NotFound);
      expect(e.message, name).toContain("port-forward stream 999 not found");
    }
  });

  it("a second Read while one waits is FailedPrecondition; Write after CloseWrite too; Close forgets the stream", async () => {
    const port = await guestServer(() => {});
    const { streamId } = await r.api.Dial({ port });
    const first = r.api.Read({ streamId, len: 10 });
    const e = (await r.api.Read({ streamId, len: 10 }).catch((x: RpcError) => x)) as RpcError;
    expect(e.code).toBe(Code.FailedPrecondition);
    expect(e.message).toContain("a Read is already waiting");
    await r.api.CloseWrite({ streamId });
    const w = (await r.api.Write({ streamId, data: Buffer.from("late") }).catch((x: RpcError) => x)) as RpcError;
    expect(w.code).toBe(Code.FailedPrecondition);
    expect(w.message).toContain("Write after CloseWrite");
    await r.api.Close({ streamId, reset: false });
    expect((await first).data.length).toBe(0); // the waiting Read ends as end of stream
    expect(r.agent.open).toBe(0);
    expect(((await r.api.Read({ streamId, len: 1 }).catch((x: RpcError) => x)) as RpcError).code).toBe(Code.NotFound);
  });

  it("Read answers at most what was asked, and the rest on the next Read", async () => {
    const port = await guestServer((s) => s.end("0123456789"));
    const { streamId } = await r.api.Dial({ port });
    const a = (await r.api.Read({ streamId, len: 4 })).data.toString();
    let rest = "";
    for (;;) {
      const d = (await r.api.Read({ streamId, len: 100 })).data;
      if (!d.length) break;
      rest += d.toString();
    }
    expect(a + rest).toBe("0123456789");
    expect(a.length).toBeLessThanOrEqual(4);
    await r.api.Close({ streamId, reset: false });
  });
});

describe("the shim's relay over the agent's service", () => {
  it("carries bytes both ways, intact (4 MiB each way through an echo server)", async () => {
    const r = await rig();
    const port = await guestServer((s) => s.pipe(s));
    const c = await r.connect(port);
    const payload = crypto.randomBytes(4 << 20);
    const got = readAll(c);
    c.end(payload);
    const back = await got;
    expect(back.length).toBe(payload.length);
    expect(sha(back)).toBe(sha(payload));
    await waitFor("the relay and the agent to forget the stream", () => r.relay.open === 0 && r.agent.open === 0);
  });

  it("half-close: the client's FIN reaches the guest as EOF, and the guest's answer still comes back", async () => {
    const r = await rig();
    // Answers only after its input ended: the client's half-close must cross.
    const port = await guestServer((s) => {
      let n = 0;
      s.on("data", (d: Buffer) => (n += d.length));
      s.on("end", () => s.end(`got ${n} bytes\n`));
    });
    const c = await r.connect(port);
    const got = readAll(c);
    c.write("hello ");
    c.end("world");
    expect((await got).toString()).toBe("got 11 bytes\n");
  });

  it("half-close the other way: the guest's FIN ends the client's input while the client can still send", async () => {
    const r = await rig();
    let received = "";
    let guestGotAll!: () => void;
    const gotAll = new Promise<void>((resolve) => (guestGotAll = resolve));
    const port = await guestServer((s) => {
      s.end("bye early\n");
      s.on("data", (d: Buffer) => (received += d.toString()));
      s.on("end", () => guestGotAll());
    });
    const c = await r.connect(port);
    const got = await readAll(c);
    expect(got.toString()).toBe("bye early\n");
    c.end("still talking\n");
    await gotAll;
    expect(received).toBe("still talking\n");
  });

  it("many connections at once, each to its own stream", async () => {
    const r = await rig();
    const port = await guestServer((s) => {
      let all = "";
      s.on("data", (d: Buffer) => (all += d.toString()));
      s.on("end", () => s.end(all.toUpperCase()));
    });
    const n = 64;
    const answers = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const c = await r.connect(port);
        const got = readAll(c);
        c.end(`connection ${i}`);
        return (await got).toString();
      }),
    );
    expect(answers).toEqual(Array.from({ length: n }, (_, i) => `CONNECTION ${i}`));
    await waitFor("every stream to close", () => r.relay.open === 0 && r.agent.open === 0);
  });

  it("an unknown port is answered with a reset, not a hang", async () => {
    const r = await rig();
    const port = await deadPort();
    const c = await r.connect(port);
    const e = await readAll(c).then(
      () => null,
      (x: NodeJS.ErrnoException) => x,
    );
    expect(e?.code).toBe("ECONNRESET");
    expect(r.logs.some((l) => l.msg.includes("dial in the guest failed") && String(l.fields?.error).includes("ECONNREFUSED"))).toBe(true);
    expect(r.relay.open).toBe(0);
  });

  it("a guest server's reset resets the client; a client's reset aborts the guest's connection", async () => {
    const r = await rig();
    const port = await guestServer((s) => s.once("data", () => s.resetAndDestroy()));
    const c = await r.connect(port);
    const got = readAll(c).then(
      () => null,
      (x: NodeJS.ErrnoException) => x.code,
    );
    c.write("provoke");
    expect(await got).toBe("ECONNRESET");
    await waitFor("the stream to go", () => r.relay.open === 0 && r.agent.open === 0);

    let guestSaw: string | null = null;
    const port2 = await guestServer((s) => {
      s.on("error", (e: NodeJS.ErrnoException) => (guestSaw = e.code ?? e.message));
      s.on("end", () => (guestSaw ??= "end"));
    });
    const c2 = await r.connect(port2);
    c2.write("x");
    await waitFor("the stream to open", () => r.agent.open === 1);
    c2.resetAndDestroy();
    await waitFor("the guest's side to see it", () => guestSaw !== null);
    expect(guestSaw).toBe("ECONNRESET");
    await waitFor("the stream to go", () => r.relay.open === 0 && r.agent.open === 0);
  });

  it("backpressure toward the guest: a server that does not read holds the client up, and nothing is lost", async () => {
    let written = 0;
    const r = await rig({
      wrap: (api) => ({ ...api, Write: async (req) => { const res = await api.Write(req); written += res.len; return res; } }),
    });
    let guest: net.Socket | null = null;
    const chunks: Buffer[] = [];
    let ended!: () => void;
    const done = new Promise<void>((resolve) => (ended = resolve));
    const port = await guestServer((s) => {
      guest = s;
      s.pause(); // reads nothing until told
      s.on("data", (d: Buffer) => chunks.push(d));
      s.on("end", () => ended());
    });
    const total = 48 << 20;
    const payload = crypto.randomBytes(total);
    const c = await r.connect(port);
    c.end(payload);
    // The kernel buffers on the way take some; the relay must then stop taking the client's bytes,
    // far short of the whole, rather than hold them itself.
    const atStall = await stalled(() => r.accepted[0].bytesRead);
    expect(atStall).toBeLessThan(total / 2);
    expect(written).toBeLessThanOrEqual(atStall);
    guest!.resume();
    await done;
    const got = Buffer.concat(chunks);
    expect(got.length).toBe(total);
    expect(sha(got)).toBe(sha(payload));
  }, 60_000);

  it("backpressure toward the client: a client that does not read holds the guest's server up; the agent buffers at most its bound", async () => {
    let read = 0;
    const r = await rig({
      wrap: (api) => ({ ...api, Read: async (req) => { const res = await api.Read(req); read += res.data.length; return res; } }),
    });
    const total = 48 << 20;
    const payload = crypto.randomBytes(total);
    let serverWrote = 0;
    const port = await guestServer((s) => {
      let off = 0;
      const pump = () => {
        while (off < total) {
          const n = Math.min(1 << 20, total - off);
          const ok = s.write(payload.subarray(off, off + n));
          off += n;
          serverWrote = off;
          if (!ok) return void s.once("drain", pump);
        }
        s.end();
      };
      pump();
    });
    const c = await r.connect(port);
    c.pause();
    const atStall = await stalled(() => read);
    expect(atStall).toBeLessThan(total / 2);
    expect(serverWrote).toBeLessThan(total);
    const chunks: Buffer[] = [];
    const ended = new Promise<void>((resolve) => c.on("end", () => resolve()));
    c.on("data", (d: Buffer) => chunks.push(d));
    c.resume();
    await ended;
    const got = Buffer.concat(chunks);
    expect(got.length).toBe(total);
    expect(sha(got)).toBe(sha(payload));
    expect(READ_BUFFER).toBeLessThanOrEqual(1 << 20);
    c.end();
  }, 60_000);

  it("an agent without the service (a kata-agent): Unimplemented, said clearly once, every connection reset", async () => {
    const r = await rig({ serve: false });
    const e = (await r.api.Dial({ port: 80 }).catch((x: RpcError) => x)) as RpcError;
    expect(e.code).toBe(Code.Unimplemented);
    for (let i = 0; i < 2; i++) {
      const c = await r.connect(80);
      const err = await readAll(c).then(
        () => null,
        (x: NodeJS.ErrnoException) => x.code,
      );
      expect(err).toBe("ECONNRESET");
    }
    const said = r.logs.filter((l) => l.level === "error" && l.msg.includes("does not serve shimlab.v1.PortForward"));
    expect(said).toHaveLength(1);
  });

  it("closing the relay (the sandbox stopping) resets the connections it carries and ends their streams", async () => {
    const r = await rig();
    const port = await guestServer(() => {});
    const c = await r.connect(port);
    c.write("x");
    await waitFor("the stream", () => r.relay.open === 1 && r.agent.open === 1);
    const err = readAll(c).then(
      () => null,
      (x: NodeJS.ErrnoException) => x.code,
    );
    r.relay.close();
    expect(await err).toBe("ECONNRESET");
    await waitFor("the agent to drop the stream", () => r.agent.open === 0);
  });
});
