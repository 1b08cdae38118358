// shimlab's TypeScript ttrpc client against a Go ttrpc server
// (github.com/containerd/ttrpc at test/interop/go.mod's version): the server
// every shim's containerd-facing socket and containerd's own events endpoint
// are made of. test/interop's echo-server serves shimlab.interop.v1.Echo with
// google.protobuf wrappers (method list in its main.go).
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { Client } from "../../src/ttrpc/client";
import { Code, RpcError } from "../../src/ttrpc/status";
import type { ServiceDef } from "../../src/ttrpc/service";
import { Empty } from "../../src/gen/google.protobuf";
import { interopProgram } from "../../src/harness/peers/interop";
import { missing } from "../helpers/env";
import { expectNoProcessesMentioning } from "../helpers/leaks";
import { Int64Value, StringValue } from "../helpers/wrappers";

const skip = missing("go");

const Echo = {
  name: "shimlab.interop.v1.Echo",
  methods: {
    Echo: { name: "Echo", requestType: StringValue, responseType: StringValue },
    Delay: { name: "Delay", requestType: Int64Value, responseType: Int64Value },
    Fail: { name: "Fail", requestType: StringValue, responseType: Empty },
    FailPlain: { name: "FailPlain", requestType: StringValue, responseType: Empty },
    Deadline: { name: "Deadline", requestType: Empty, responseType: Int64Value },
    Sleep: { name: "Sleep", requestType: Int64Value, responseType: Int64Value },
    Metadata: { name: "Metadata", requestType: Empty, responseType: StringValue },
    Big: { name: "Big", requestType: Int64Value, responseType: StringValue },
    Hangup: { name: "Hangup", requestType: Empty, responseType: Empty },
    Log: { name: "Log", requestType: Empty, responseType: StringValue },
  },
} as const satisfies ServiceDef;

const MiB = 1 << 20;
const rejection = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as RpcError);

interface GoServer {
  proc: ChildProcess;
  socket: string;
  stderr: () => string;
}

/** echo-server on a socket in dir; resolves once it says READY. */
function startServer(bin: string, dir: string, name: string): Promise<GoServer> {
  const socket = path.join(dir, `${name}.sock`);
  const proc = spawn(bin, ["-socket", socket], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  proc.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`echo-server not ready after 10 s: ${err}`)), 10_000);
    proc.stdout!.on("data", (d) => {
      if (String(d).startsWith("READY")) {
        clearTimeout(timer);
        resolve({ proc, socket, stderr: () => err });
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`echo-server exited (${code}) before it was ready: ${err}`));
    });
  });
}

async function stopServer(s: GoServer): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise((r) => s.proc.once("exit", r));
  s.proc.kill("SIGTERM");
  const t = setTimeout(() => s.proc.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(t);
}

describe.skipIf(skip)("shimlab's ttrpc client against Go's ttrpc server", () => {
  let bin: string;
  let dir: string;
  let server: GoServer;
  const clients: Client[] = [];
  const extraServers: GoServer[] = [];

  beforeAll(async () => {
    bin = await interopProgram("echo-server");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-go-ttrpc-"));
    server = await startServer(bin, dir, "echo");
  }, 600_000);

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of extraServers.splice(0)) await stopServer(s);
  });

  afterAll(async () => {
    if (server) await stopServer(server);
    if (dir) {
      await expectNoProcessesMentioning([dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  async function dial(socket = server.socket, opts: { defaultTimeoutMs?: number } = {}) {
    const c = await Client.dial(socket, { connectTimeoutMs: 5_000, ...opts });
    clients.push(c);
    return { client: c, echo: c.service(Echo) };
  }

  it("makes unary calls, empty and near the 4 MiB limit included", async () => {
    const { echo } = await dial();
    expect((await echo.Echo({ value: "hello" })).value).toBe("hello");
    // An empty message: Go sends a Response with no payload at all.
    expect((await echo.Echo({ value: "" })).value).toBe("");
    expect((await echo.Echo({ value: "héllo, 世界 🚢" })).value).toBe("héllo, 世界 🚢");
    const big = "y".repeat(4 * MiB - 64);
    expect((await echo.Echo({ value: big }, { timeoutMs: 20_000 })).value).toBe(big);
    expect((await echo.Delay({ value: 2 })).value).toBe(2);
  }, 30_000);

  it("runs many calls at once on one connection and matches the out-of-order answers by stream id", async () => {
    const { client, echo } = await dial();
    // Call i waits (N - i) * 2 ms, so the answers come back roughly in reverse.
    const N = 100;
    const finished: number[] = [];
    const delayed = Array.from({ length: N }, (_, i) =>
      echo.Delay({ value: (N - i) * 2 }).then((r) => {
        finished.push(i);
        return r.value;
      }),
    );
    // Meanwhile a burst of echoes: Go's server refuses a stream id that does not increase,
    // so this also checks that ids go on the wire in the order they are taken.
    const echoes = Array.from({ length: 400 }, (_, i) => echo.Echo({ value: `e${i}` }).then((r) => r.value));
    expect(client.inFlight).toBe(N + 400);
    expect(await Promise.all(delayed)).toEqual(Array.from({ length: N }, (_, i) => (N - i) * 2));
    expect(await Promise.all(echoes)).toEqual(Array.from({ length: 400 }, (_, i) => `e${i}`));
    expect(finished).not.toEqual([...finished].sort((a, b) => a - b));
    expect(finished.slice(0, 10).every((i) => i >= N / 2)).toBe(true);
    expect(client.inFlight).toBe(0);
  }, 30_000);

  it("gets every status code with its message and details, and Go's codes for plain errors", async () => {
    const { echo } = await dial();
    for (let code = 1; code <= 16; code++) {
      const e = await rejection(echo.Fail({ value: `${code} failure number ${code}` }));
      expect(e).toBeInstanceOf(RpcError);
      expect([e!.code, e!.message]).toEqual([code, `failure number ${code}`]);
      expect(e!.details.map((d) => d.typeUrl)).toEqual(["type.googleapis.com/google.protobuf.StringValue", "type.googleapis.com/google.protobuf.Int64Value"]);
      expect(StringValue.decode(e!.details[0].value).value).toBe(`detail of failure number ${code}`);
      expect(Int64Value.decode(e!.details[1].value).value).toBe(code);
    }
    // ttrpc's convertCode for errors that are not a status
    const plain = async (v: string) => {
      const e = await rejection(echo.FailPlain({ value: v }));
      return [e?.codeName, e?.message];
    };
    expect(await plain("eof")).toEqual(["OutOfRange", "EOF"]);
    expect(await plain("notexist")).toEqual(["NotFound", "open /nowhere: file does not exist"]);
    expect(await plain("exist")).toEqual(["AlreadyExists", "mkdir /: file already exists"]);
    expect(await plain("something else")).toEqual(["Unknown", "something else"]);
    const { client } = await dial();
    const unknownMethod = await rejection(client.call(Echo.name, "Nope", Empty, {}, Empty));
    expect([unknownMethod?.code, unknownMethod?.message]).toEqual([Code.Unimplemented, "method Nope"]);
    const unknownService = await rejection(client.call("shimlab.interop.v1.Nope", "Echo", Empty, {}, Empty));
    expect([unknownService?.code, unknownService?.message]).toEqual([Code.Unimplemented, "service shimlab.interop.v1.Nope"]);
  });

  it("sends its timeout as timeout_nano, which the server sees as its context's deadline", async () => {
    const { echo } = await dial();
    const left = (await echo.Deadline({}, { timeoutMs: 1500 })).value;
    expect(left).toBeGreaterThan(1.0e9);
    expect(left).toBeLessThanOrEqual(1.5e9);
    expect((await echo.Deadline({})).value).toBe(-1);
    const { echo: withDefault } = await dial(server.socket, { defaultTimeoutMs: 2000 });
    const d = (await withDefault.Deadline({})).value;
    expect(d).toBeGreaterThan(1.5e9);
    expect(d).toBeLessThanOrEqual(2e9);
  });

  it("keeps a far timeout (past Node's 24.8-day timer limit) as a far deadline", async () => {
    const { echo } = await dial();
    const days30 = 30 * 24 * 3600 * 1000;
    const left = (await echo.Deadline({}, { timeoutMs: days30 })).value;
    expect(left).toBeGreaterThan((days30 - 60_000) * 1e6);
    expect((await echo.Sleep({ value: 300 }, { timeoutMs: days30 })).value).toBe(300);
  });

  it("times a slow call out on its own; the server ends it by the same deadline, and the connection lives on", async () => {
    const { client, echo } = await dial();
    const t0 = performance.now();
    const e = await rejection(echo.Sleep({ value: 5000 }, { timeoutMs: 200 }));
    const ms = performance.now() - t0;
    expect(e?.code).toBe(Code.DeadlineExceeded);
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(ms).toBeLessThan(1500);
    // The Go handler's context ended too: timeout_nano reached it.
    let log: string[] = [];
    for (let i = 0; i < 50 && !log.length; i++) {
      log = JSON.parse((await echo.Log({})).value ?? "null") ?? [];
      if (!log.length) await new Promise((r) => setTimeout(r, 20));
    }
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/^sleep 5000: context deadline exceeded after (1\d\d|2\d\d|3\d\d) ms$/);
    // Go's late DeadlineExceeded answer for that stream was dropped, and nothing else broke.
    expect((await echo.Echo({ value: "still here" })).value).toBe("still here");
    expect(client.isClosed).toBe(false);
    expect(client.inFlight).toBe(0);
  });

  it("sends metadata the Go server reads (ttrpc has no metadata going back)", async () => {
    const { echo } = await dial();
    const md = await echo.Metadata({}, { metadata: { "containerd-namespace-ttrpc": "ns1", "X-Trace": ["a", "b"] } });
    expect(JSON.parse(md.value)).toEqual({ "containerd-namespace-ttrpc": ["ns1"], "x-trace": ["a", "b"] });
    expect(JSON.parse((await echo.Metadata({})).value)).toBeNull();
  });

  it("refuses a request over 4 MiB before sending it, as Go's client does, and keeps the connection", async () => {
    const { client, echo } = await dial();
    const e = await rejection(echo.Echo({ value: "z".repeat(4 * MiB + 1) }));
    expect(e?.code).toBe(Code.ResourceExhausted);
    expect(e?.message).toMatch(/^message length \d+ exceed maximum message size of 4194304$/);
    expect((await echo.Echo({ value: "after" })).value).toBe("after");
    expect(client.isClosed).toBe(false);
  });

  it("fails every pending call at once when the server closes the connection mid-call", async () => {
    const { client, echo } = await dial();
    const { echo: other } = await dial();
    const pending = Array.from({ length: 5 }, () => rejection(echo.Sleep({ value: 10_000 })));
    await new Promise((r) => setTimeout(r, 100));
    expect(client.inFlight).toBe(5);
    const t0 = performance.now();
    const hangup = rejection(echo.Hangup({}));
    const errors = await Promise.all([...pending, hangup]);
    expect(performance.now() - t0).toBeLessThan(1000);
    for (const e of errors) expect([e?.code, e?.message]).toEqual([Code.Unavailable, "ttrpc: closed"]);
    expect(client.isClosed).toBe(true);
    expect((await rejection(echo.Echo({ value: "x" })))?.code).toBe(Code.Unavailable);
    // Only that connection went.
    expect((await other.Echo({ value: "other" })).value).toBe("other");
  });

  it("fails pending calls at once when the server process dies", async () => {
    const s = await startServer(bin, dir, "doomed");
    extraServers.push(s);
    const { client, echo } = await dial(s.socket);
    const pending = Array.from({ length: 3 }, () => rejection(echo.Sleep({ value: 10_000 })));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    s.proc.kill("SIGKILL");
    const errors = await Promise.all(pending);
    expect(performance.now() - t0).toBeLessThan(1000);
    for (const e of errors) expect(e?.code).toBe(Code.Unavailable);
    expect(client.isClosed).toBe(true);
  });

  it("fails the call, not hangs, when Go's server cannot send its answer (over 4 MiB) and drops the connection", async () => {
    const { client, echo } = await dial();
    // Go's server refuses to write a response over messageLengthMax and closes the connection.
    const t0 = performance.now();
    const e = await rejection(echo.Big({ value: 5 * MiB }, { timeoutMs: 20_000 }));
    expect(performance.now() - t0).toBeLessThan(5000);
    expect([e?.code, e?.message]).toEqual([Code.Unavailable, "ttrpc: closed"]);
    expect(client.isClosed).toBe(true);
    const { echo: again } = await dial();
    expect((await again.Big({ value: 3 * MiB }, { timeoutMs: 20_000 })).value).toHaveLength(3 * MiB);
  }, 30_000);
});
