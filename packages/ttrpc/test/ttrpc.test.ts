import { describe, it, expect, afterEach } from "vitest";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import {
  Server,
  Client,
  FrameReader,
  encodeFrame,
  MessageType,
  Code,
  RpcError,
  notFound,
  type FrameEvent,
  type ServiceDef,
} from "../src";
import { KeyValue, Request, Response } from "../src/gen/ttrpc";
import { StringList } from "../src/gen/ttrpc";

const Echo = {
  name: "test.Echo",
  methods: {
    Echo: { name: "Echo", requestType: KeyValue, responseType: KeyValue },
    Big: { name: "Big", requestType: KeyValue, responseType: StringList },
    Slow: { name: "Slow", requestType: KeyValue, responseType: KeyValue },
    Fail: { name: "Fail", requestType: KeyValue, responseType: KeyValue },
    Meta: { name: "Meta", requestType: KeyValue, responseType: StringList },
  },
} as const satisfies ServiceDef;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function startServer(): Promise<{ server: Server; sock: string; aborted: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ttrpc-test-"));
  const sock = path.join(dir, "s.sock");
  const server = new Server();
  const aborted: string[] = [];
  server.register(Echo, {
    Echo: (req) => ({ key: req.key, value: req.value }),
    Big: (req) => ({ list: [Buffer.alloc(Number(req.value), "x").toString()] }),
    Slow: (req, ctx) =>
      new Promise((resolve) => {
        const t = setTimeout(() => resolve({ key: req.key }), Number(req.value));
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(t);
          aborted.push(req.key);
        });
      }),
    Fail: () => {
      throw notFound("no such thing");
    },
    Meta: (_req, ctx) => ({ list: [...ctx.metadata.entries()].map(([k, v]) => `${k}=${v.join(",")}`) }),
  });
  const l = net.createServer();
  server.serve(l);
  await new Promise<void>((r) => l.listen(sock, r));
  cleanups.push(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { server, sock, aborted };
}

function rawConnect(sock: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(sock, () => resolve(s));
    s.on("error", reject);
  });
}

function reqFrame(id: number, service: string, method: string, payload: Buffer): Buffer {
  return encodeFrame(id, MessageType.Request, 0, Request.encode({ service, method, payload }));
}

function readFrames(sock: net.Socket, n: number): Promise<FrameEvent[]> {
  return new Promise((resolve) => {
    const out: FrameEvent[] = [];
    const r = new FrameReader();
    sock.on("data", (c: Buffer) =>
      r.push(c, (e) => {
        out.push(e);
        if (out.length === n) resolve(out);
      }),
    );
  });
}

describe("frame reader", () => {
  it("yields the same frames whatever byte boundary splits the stream", () => {
    const frames = [
      encodeFrame(1, MessageType.Request, 0, Buffer.from("hello")),
      encodeFrame(3, MessageType.Response, 0, Buffer.alloc(0)),
      encodeFrame(5, MessageType.Request, 2, Buffer.alloc(300, 7)),
    ];
    const all = Buffer.concat(frames);
    const expectBodies = ["68656c6c6f", "", Buffer.alloc(300, 7).toString("hex")];
    for (let i = 0; i <= all.length; i++) {
      for (const j of [i, Math.min(all.length, i + 1), Math.min(all.length, i + 11)]) {
        const r = new FrameReader();
        const got: FrameEvent[] = [];
        r.push(all.subarray(0, i), (e) => got.push(e));
        r.push(all.subarray(i, j), (e) => got.push(e));
        r.push(all.subarray(j), (e) => got.push(e));
        expect(got.map((g) => (g.kind === "frame" ? [g.header.streamId, g.header.type, g.header.flags, g.body.toString("hex")] : g.kind))).toEqual([
          [1, 1, 0, expectBodies[0]],
          [3, 2, 0, expectBodies[1]],
          [5, 1, 2, expectBodies[2]],
        ]);
      }
    }
  });

  it("one byte at a time", () => {
    const all = Buffer.concat([encodeFrame(7, 1, 0, Buffer.from("abc")), encodeFrame(9, 1, 0, Buffer.from("de"))]);
    const r = new FrameReader();
    const got: string[] = [];
    for (const b of all) r.push(Buffer.from([b]), (e) => got.push(e.kind === "frame" ? e.body.toString() : e.kind));
    expect(got).toEqual(["abc", "de"]);
  });

  it("skips an oversized body and stays in sync", () => {
    const big = Buffer.alloc((4 << 20) + 1);
    const all = Buffer.concat([encodeFrame(1, 1, 0, big), encodeFrame(3, 1, 0, Buffer.from("ok"))]);
    const r = new FrameReader();
    const got: FrameEvent[] = [];
    for (let off = 0; off < all.length; off += 65536) r.push(all.subarray(off, off + 65536), (e) => got.push(e));
    expect(got.map((g) => g.kind)).toEqual(["oversize", "frame"]);
    expect(got[0].kind === "oversize" && got[0].header.streamId).toBe(1);
    expect(got[1].kind === "frame" && got[1].body.toString()).toBe("ok");
  });

  it("reports garbage as malformed and stops", () => {
    const r = new FrameReader();
    const got: FrameEvent[] = [];
    r.push(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (e) => got.push(e));
    expect(got.map((g) => g.kind)).toEqual(["malformed"]);
  });
});

describe("ttrpc client and server", () => {
  it("makes a unary call", async () => {
    const { sock } = await startServer();
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    const echo = c.service(Echo);
    expect(await echo.Echo({ key: "k", value: "v" })).toEqual({ key: "k", value: "v" });
  });

  it("peersGone waits for the peer to hang up, and no longer than it is told", async () => {
    const { server, sock } = await startServer();
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    await c.service(Echo).Echo({ key: "k" });
    let gone = false;
    const waiting = server.peersGone(10_000).then(() => (gone = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(gone).toBe(false);
    c.close();
    await waiting;
    expect(server.connections.size).toBe(0);

    const stays = await Client.dial(sock);
    cleanups.push(() => stays.close());
    await stays.service(Echo).Echo({ key: "k" });
    const t0 = Date.now();
    await server.peersGone(100);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    expect(server.connections.size).toBe(1);
  });

  it("answers 1000 concurrent calls on one connection, matched by stream id", async () => {
    const { sock } = await startServer();
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    const echo = c.service(Echo);
    const calls = Array.from({ length: 1000 }, (_, i) =>
      // every tenth call is slow, so answers come back out of order
      i % 10 === 0 ? echo.Slow({ key: `k${i}`, value: String(20 + (i % 7)) }) : echo.Echo({ key: `k${i}`, value: `v${i}` }),
    );
    const res = await Promise.all(calls);
    res.forEach((r, i) => expect(r.key).toBe(`k${i}`));
    expect(c.inFlight).toBe(0);
  });

  it("carries errors as google.rpc.Status with containerd's errdefs wording", async () => {
    const { sock } = await startServer();
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    const err = await c.service(Echo).Fail({}).catch((e) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err.code).toBe(Code.NotFound);
    expect(err.message).toBe("no such thing: not found");
  });

  it("answers an unknown service or method with Unimplemented", async () => {
    const { sock } = await startServer();
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    const e1 = await c.call("no.Such", "X", KeyValue, {}, KeyValue).catch((e) => e);
    expect([e1.code, e1.message]).toEqual([Code.Unimplemented, "service no.Such"]);
    const e2 = await c.call("test.Echo", "Nope", KeyValue, {}, KeyValue).catch((e) => e);
    expect([e2.code, e2.message]).toEqual([Code.Unimplemented, "method Nope"]);
  });

  it("passes metadata, lower-cased, several values per key", async () => {
    const { sock } = await startServer();
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    const res = await c.service(Echo).Meta({}, { metadata: { "Containerd-Namespace-Ttrpc": "default", x: ["1", "2"] } });
    expect(res.list.sort()).toEqual(["containerd-namespace-ttrpc=default", "x=1,2"]);
  });

  it("honours timeout_nano: the handler is cancelled and the caller gets DeadlineExceeded", async () => {
    const { sock, aborted } = await startServer();
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    // Send the request by hand with timeout_nano but no local timer, to see the server enforce it.
    const raw = await rawConnect(sock);
    cleanups.push(() => raw.destroy());
    const frames = readFrames(raw, 1);
    raw.write(
      encodeFrame(1, MessageType.Request, 0, Request.encode({ service: "test.Echo", method: "Slow", payload: KeyValue.encode({ key: "slow", value: "5000" }), timeoutNano: 50e6 })),
    );
    const [f] = await frames;
    expect(f.kind).toBe("frame");
    const res = Response.decode((f as { body: Buffer }).body);
    expect(res.status?.code).toBe(Code.DeadlineExceeded);
    expect(aborted).toContain("slow");
    // and the client-side timer fails a call by itself too
    const e = await c.service(Echo).Slow({ key: "a", value: "5000" }, { timeoutMs: 30 }).catch((x) => x);
    expect(e.code).toBe(Code.DeadlineExceeded);
  });

  it("takes a timeout past Node's 24.8-day timer limit as a far deadline, on both sides", async () => {
    // Node fires a longer setTimeout after 1 ms; Go's client sent 30 days of
    // timeout_nano to the shim, which answered Wait with DeadlineExceeded at once (test/interop).
    const { sock, aborted } = await startServer();
    const days30 = 30 * 24 * 3600 * 1000;
    const raw = await rawConnect(sock);
    cleanups.push(() => raw.destroy());
    const frames = readFrames(raw, 1);
    raw.write(encodeFrame(1, MessageType.Request, 0, Request.encode({ service: "test.Echo", method: "Slow", payload: KeyValue.encode({ key: "far", value: "100" }), timeoutNano: days30 * 1e6 })));
    const res = Response.decode(((await frames)[0] as { body: Buffer }).body);
    expect(res.status?.code ?? Code.OK).toBe(Code.OK);
    expect(KeyValue.decode(res.payload).key).toBe("far");
    expect(aborted).toEqual([]);
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    expect((await c.service(Echo).Slow({ key: "client", value: "100" }, { timeoutMs: days30 })).key).toBe("client");
  });

  it("fails an oversized request with ResourceExhausted and keeps the connection", async () => {
    const { sock } = await startServer();
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    const echo = c.service(Echo);
    const e = await echo.Echo({ key: "x", value: "y".repeat(5 << 20) }).catch((x) => x);
    expect(e.code).toBe(Code.ResourceExhausted);
    expect(await echo.Echo({ key: "after" })).toEqual({ key: "after", value: "" });
    // a response over the limit fails that call only
    const e2 = await echo.Big({ value: String(5 << 20) }).catch((x) => x);
    expect(e2.code).toBe(Code.ResourceExhausted);
    expect(await echo.Echo({ key: "still" })).toEqual({ key: "still", value: "" });
  });

  it("answers an oversized frame sent on the wire with ResourceExhausted on its stream", async () => {
    const { sock } = await startServer();
    const raw = await rawConnect(sock);
    cleanups.push(() => raw.destroy());
    const frames = readFrames(raw, 2);
    const payload = KeyValue.encode({ key: "z", value: "q".repeat((4 << 20) + 10) });
    raw.write(reqFrame(5, "test.Echo", "Echo", payload));
    raw.write(reqFrame(7, "test.Echo", "Echo", KeyValue.encode({ key: "next" })));
    const got = await frames;
    const byId = new Map(got.map((g) => [(g as { header: { streamId: number } }).header.streamId, Response.decode((g as { body: Buffer }).body)]));
    expect(byId.get(5)!.status?.code).toBe(Code.ResourceExhausted);
    expect(KeyValue.decode(byId.get(7)!.payload).key).toBe("next");
  });

  it("closes a connection that sends garbage and keeps serving the others", async () => {
    const { sock, server } = await startServer();
    const good = await Client.dial(sock);
    cleanups.push(() => good.close());
    const raw = await rawConnect(sock);
    const closed = new Promise((r) => raw.on("close", r));
    const errors: string[] = [];
    server.on("protocolError", (_c, reason) => errors.push(reason));
    raw.write(Buffer.from("this is not a ttrpc frame at all\n"));
    await closed;
    expect(errors.length).toBe(1);
    expect(await good.service(Echo).Echo({ key: "alive" })).toEqual({ key: "alive", value: "" });
  });

  it("survives a truncated frame and a request it cannot decode", async () => {
    const { sock } = await startServer();
    const raw = await rawConnect(sock);
    const frames = readFrames(raw, 2);
    raw.write(encodeFrame(1, MessageType.Request, 0, Buffer.from([0x0a, 0xff])));
    raw.write(encodeFrame(2, MessageType.Request, 0, Request.encode({ service: "test.Echo", method: "Echo" })));
    const got = await frames;
    expect(Response.decode((got[0] as { body: Buffer }).body).status?.code).toBe(Code.InvalidArgument);
    const even = Response.decode((got[1] as { body: Buffer }).body).status!;
    expect([even.code, even.message]).toEqual([Code.InvalidArgument, "StreamID must be odd for client initiated streams"]);
    // a header with half a body, then the peer goes away
    raw.end(encodeFrame(3, MessageType.Request, 0, Buffer.alloc(100)).subarray(0, 40));
    await new Promise((r) => raw.on("close", r));
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    expect((await c.service(Echo).Echo({ key: "ok" })).key).toBe("ok");
  });

  it("answers a request whose payload does not decode with Internal, as Go's ttrpc does", async () => {
    // Go's ttrpc 1.1 (containerd 1.6's runc shim) and 1.2 both say
    // `Internal: ttrpc: error unmarshalling payload: unexpected EOF` (test/interop).
    const { sock } = await startServer();
    const raw = await rawConnect(sock);
    cleanups.push(() => raw.destroy());
    const frames = readFrames(raw, 2);
    // KeyValue.key announces 100 bytes and has 1.
    raw.write(reqFrame(1, "test.Echo", "Echo", Buffer.from([0x0a, 100, 0x78])));
    raw.write(reqFrame(3, "test.Echo", "Echo", KeyValue.encode({ key: "next" })));
    const byId = new Map((await frames).map((f) => [(f as { header: { streamId: number } }).header.streamId, Response.decode((f as { body: Buffer }).body)]));
    const [bad, next] = [byId.get(1)!, byId.get(3)!];
    expect(bad.status?.code).toBe(Code.Internal);
    expect(bad.status?.message).toMatch(/^ttrpc: error unmarshalling payload: /);
    expect(KeyValue.decode(next.payload).key).toBe("next");
  });

  it("fails calls in flight with Unavailable when the connection drops", async () => {
    const { sock, server } = await startServer();
    const c = await Client.dial(sock);
    const p = c.service(Echo).Slow({ key: "a", value: "10000" });
    await new Promise((r) => setTimeout(r, 20));
    for (const conn of server.connections) conn.destroy();
    const e = await p.catch((x) => x);
    expect(e.code).toBe(Code.Unavailable);
    expect(e.message).toMatch(/ttrpc: closed/);
  });
});
