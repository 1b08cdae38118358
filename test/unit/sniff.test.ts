// shimlab sniff's pieces without containerd: the wire tap keeps what it cannot
// decode, the proxy forwards any bytes unchanged, start's answer is rewritten
// in the form the shim gave it.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import net from "node:net";
import path from "node:path";
import { WireTap } from "../../src/trace/wire-tap";
import { TraceRecorder, type TraceRecord } from "../../src/trace/recorder";
import { encodeFrame, MessageType } from "../../src/ttrpc/channel";
import { Request, Response } from "../../src/gen/ttrpc";
import { Task, StartRequest, StartResponse } from "../../src/gen/containerd.task.v2";
import { UnixProxy } from "../../src/sniff/proxy";
import { parseStartOutput, rewriteStartOutput } from "../../src/sniff/wrapper";
import { SHIM_SERVICES } from "../../src/sniff/services";
import { LinePrinter } from "../../src/sniff/printer";
import type { ServiceDef } from "../../src/ttrpc/service";

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "sniff-u-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
const lines = (f: string): TraceRecord[] => fs.readFileSync(f, "utf8").trim().split("\n").map((l) => JSON.parse(l));

describe("the wire tap", () => {
  it("pairs a call with its reply by stream id, decoded, and keeps undecodable frames raw", () => {
    const f = path.join(tmp(), "t.jsonl");
    const tap = new WireTap({ rec: new TraceRecorder(f, "sniff"), from: "containerd", to: "shim", services: SHIM_SERVICES as Record<string, ServiceDef>, conn: 1 });
    const req = Request.encode({ service: Task.name, method: "Start", payload: StartRequest.encode({ id: "c1" }) });
    // split across chunks, as a socket may deliver it
    const frame = encodeFrame(3, MessageType.Request, 0, req);
    tap.requestBytes(frame.subarray(0, 7));
    tap.requestBytes(frame.subarray(7));
    tap.requestBytes(encodeFrame(5, MessageType.Request, 0, Buffer.from([0xff, 0xff, 0xff])));
    tap.requestBytes(encodeFrame(7, MessageType.Request, 0, Request.encode({ service: "other.Service", method: "Do", payload: Buffer.from("x") })));
    tap.responseBytes(encodeFrame(9, MessageType.Response, 0, Response.encode({ payload: Buffer.alloc(0) })));
    tap.responseBytes(encodeFrame(3, MessageType.Response, 0, Response.encode({ payload: StartResponse.encode({ pid: 42 }) })));
    tap.requestBytes(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]));
    tap.close();
    const rs = lines(f);
    expect(rs.map((r) => [r.kind, r.method ?? r.reason])).toEqual([
      ["rpc.call", "Start"],
      ["wire.raw", "undecodable ttrpc Request"],
      ["rpc.call", "Do"],
      ["wire.raw", "response on stream 9, which has no open call"],
      ["rpc.reply", "Start"],
      ["wire.raw", expect.stringMatching(/reserved length byte is not zero/)],
      ["rpc.reply", "Do"],
    ]);
    expect(rs[0]).toMatchObject({ stream: 3, req: { id: "c1" } });
    expect(rs[1].hex).toBe("ffffff");
    expect(rs[2].payloadHex).toBe("78");
    expect(rs[4]).toMatchObject({ id: rs[0].id, ok: true, res: { pid: 42 } });
    expect(rs[6]).toMatchObject({ ok: false, code: "Unavailable" });
  });
});

describe("the proxy", () => {
  it("forwards bytes both ways unchanged, garbage included, and shows them to the tap", async () => {
    const d = tmp();
    const upstream = path.join(d, "up.sock");
    const server = net.createServer((c) => c.on("data", (b) => c.write(Buffer.concat([Buffer.from("echo:"), b]))));
    await new Promise<void>((r) => server.listen(upstream, r));
    const seen = { req: [] as Buffer[], res: [] as Buffer[] };
    const proxy = new UnixProxy({
      listen: path.join(d, "p.sock"),
      upstream,
      tap: () => ({ requestBytes: (b) => seen.req.push(b), responseBytes: (b) => seen.res.push(b), close: () => {} }),
    });
    await proxy.listen();
    const c = net.connect(path.join(d, "p.sock"));
    const junk = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0]);
    const got = await new Promise<Buffer>((resolve) => {
      c.once("data", resolve);
      c.write(junk);
    });
    expect(got).toEqual(Buffer.concat([Buffer.from("echo:"), junk]));
    expect(Buffer.concat(seen.req)).toEqual(junk);
    expect(Buffer.concat(seen.res)).toEqual(got);
    c.destroy();
    await proxy.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it("closes a connection whose upstream is gone, instead of holding it", async () => {
    const d = tmp();
    const errors: string[] = [];
    const proxy = new UnixProxy({ listen: path.join(d, "p.sock"), upstream: path.join(d, "none.sock"), tap: () => null, onUpstreamError: (_c, e) => errors.push(e.message) });
    await proxy.listen();
    const c = net.connect(path.join(d, "p.sock"));
    await new Promise((r) => c.once("close", r));
    expect(errors[0]).toMatch(/ENOENT/);
    await proxy.close();
  });
});

describe("start's answer", () => {
  it("keeps its form: a line for containerd 1.x, bootstrap JSON for 2.x, bare or unix:// as given", () => {
    expect(rewriteStartOutput("unix:///run/containerd/s/abc\n", "unix:///run/containerd/s/abc", "/run/x/s.sock")).toBe("unix:///run/x/s.sock\n");
    const json = '{"version":3,"address":"unix:///run/containerd/s/abc","protocol":"ttrpc"}';
    expect(JSON.parse(rewriteStartOutput(json, "unix:///run/containerd/s/abc", "/run/x/s.sock"))).toEqual({ version: 3, address: "unix:///run/x/s.sock", protocol: "ttrpc" });
    expect(parseStartOutput('{"version":2,"address":"/run/s/g.sock","protocol":"grpc"}')).toMatchObject({ address: "/run/s/g.sock", protocol: "grpc" });
    expect(rewriteStartOutput('{"version":2,"address":"/run/s/g.sock","protocol":"grpc"}', "/run/s/g.sock", "/p.sock")).toContain('"address":"/p.sock"');
  });
});

describe("the live printer", () => {
  it("prints a call, its reply with latency, an event and a raw frame", () => {
    const p = new LinePrinter();
    const base = { v: 1, wall: "", pid: 1, role: "sniff" };
    expect(p.format({ ...base, t: 1000, kind: "rpc.call", id: "1.1", from: "containerd", to: "shim", method: "Kill", stream: 5, req: { id: "c", signal: 9 } })).toBe("+     0.0ms  containerd → shim  Kill(id=c signal=9) stream 5");
    expect(p.format({ ...base, t: 3500, kind: "rpc.reply", id: "1.1", from: "shim", to: "containerd", method: "Kill", ok: false, code: "NotFound", error: "gone" })).toBe("+     2.5ms  shim → containerd  Kill error NotFound: gone (2.50 ms)");
    expect(p.format({ ...base, t: 4000, kind: "event", from: "shim", to: "containerd", topic: "/tasks/exit", event: { id: "c", exitStatus: 137 } })).toBe("+     3.0ms  shim → containerd  event /tasks/exit id=c exitStatus=137");
    expect(p.format({ ...base, t: 4000, kind: "wire.raw", from: "shim", to: "containerd", reason: "undecodable ttrpc Response", stream: 3, type: 2, length: 3, hex: "ffffff" })).toContain("RAW undecodable ttrpc Response stream 3 type 2 length 3 ffffff");
  });
});
