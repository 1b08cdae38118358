import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Server, Client, Code, type ServiceDef } from "../../src/ttrpc";
import { KeyValue } from "../../src/gen/ttrpc";
import { FaultProxy } from "../../src/faults/proxy";
import { validateToxic, type Toxic } from "../../src/faults/toxics";
import { Failpoint, FailpointSyntaxError, FailpointTable, failpointInterceptor } from "../../src/faults/failpoint";
import { FaultyEventSink, parseEventFaults } from "../../src/faults/event-faults";
import type { EventSink } from "../../src/shim/publisher";
import * as ev from "../../src/gen/containerd.events";

const Echo = { name: "t.Echo", methods: { Echo: { name: "Echo", requestType: KeyValue, responseType: KeyValue } } } as const satisfies ServiceDef;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function echoBehindProxy(toxics: Toxic[] = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fault-"));
  const up = path.join(dir, "up.sock");
  const front = path.join(dir, "front.sock");
  const server = new Server();
  server.register(Echo, { Echo: (r) => ({ key: r.key, value: r.value }) });
  const l = net.createServer();
  server.serve(l);
  await new Promise<void>((r) => l.listen(up, r));
  const proxy = new FaultProxy({ listen: front, upstream: up, toxics });
  await proxy.start();
  const client = await Client.dial(front);
  cleanups.push(async () => {
    client.close();
    await proxy.stop();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { proxy, client, echo: client.service(Echo, { timeoutMs: 3000 }), server };
}

describe("toxics on a unix-socket ttrpc link", () => {
  it("passes calls through untouched without toxics", async () => {
    const { echo } = await echoBehindProxy();
    expect(await echo.Echo({ key: "a", value: "b" })).toEqual({ key: "a", value: "b" });
  });

  it("latency delays each direction", async () => {
    const { echo } = await echoBehindProxy([
      { stream: "upstream", spec: { type: "latency", latency: 80 } },
      { stream: "downstream", spec: { type: "latency", latency: 80 } },
    ]);
    const t0 = performance.now();
    await echo.Echo({ key: "x" });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150);
  });

  it("slicer cuts frames into pieces and ttrpc reassembles them", async () => {
    const { echo } = await echoBehindProxy([{ stream: "downstream", spec: { type: "slicer", average_size: 3, size_variation: 2, delay: 200 } }]);
    // ~500 slices, each behind a timer: enough to cut every frame, small enough for a loaded machine's 3 s deadline.
    const big = "z".repeat(1500);
    expect((await echo.Echo({ key: "k", value: big })).value).toBe(big);
  });

  it("bandwidth slows a large answer", async () => {
    const { echo } = await echoBehindProxy([{ stream: "downstream", spec: { type: "bandwidth", rate: 100 } }]);
    const t0 = performance.now();
    await echo.Echo({ key: "k", value: "q".repeat(20 * 1024) });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150);
  });

  it("timeout swallows everything: the call hits its own deadline", async () => {
    const { client } = await echoBehindProxy([{ stream: "upstream", spec: { type: "timeout", timeout: 0 } }]);
    const e = await client.service(Echo, { timeoutMs: 200 }).Echo({ key: "k" }).catch((x) => x);
    expect(e.code).toBe(Code.DeadlineExceeded);
  });

  it("reset_peer and limit_data cut the connection: calls fail Unavailable", async () => {
    const a = await echoBehindProxy([{ stream: "upstream", spec: { type: "reset_peer", timeout: 10 } }]);
    expect((await a.echo.Echo({ key: "k" }).catch((x) => x)).code).toBe(Code.Unavailable);
    const b = await echoBehindProxy([{ stream: "downstream", spec: { type: "limit_data", bytes: 5 } }]);
    expect((await b.echo.Echo({ key: "k" }).catch((x) => x)).code).toBe(Code.Unavailable);
  });

  it("an oversized frame fails that call with ResourceExhausted; the link lives on", async () => {
    const { echo } = await echoBehindProxy([{ stream: "upstream", spec: { type: "oversize_frame", every: 2 } }]);
    expect((await echo.Echo({ key: "1" })).key).toBe("1");
    expect((await echo.Echo({ key: "2" }).catch((x) => x)).code).toBe(Code.ResourceExhausted);
    expect((await echo.Echo({ key: "3" })).key).toBe("3");
  });

  it("a corrupt frame is refused, a bad stream id goes unanswered", async () => {
    const a = await echoBehindProxy([{ stream: "upstream", spec: { type: "corrupt_frame" } }]);
    expect((await a.echo.Echo({ key: "k" }).catch((x) => x)).code).toBe(Code.InvalidArgument);
    const b = await echoBehindProxy([{ stream: "upstream", spec: { type: "bad_stream_id" } }]);
    const e = await b.client.service(Echo, { timeoutMs: 300 }).Echo({ key: "k" }).catch((x) => x);
    expect(e.code).toBe(Code.DeadlineExceeded);
  });

  it("down() cuts links and refuses new ones", async () => {
    const { proxy, echo } = await echoBehindProxy();
    proxy.down();
    expect((await echo.Echo({ key: "k" }).catch((x) => x)).code).toBe(Code.Unavailable);
    const e = await Client.dial(proxy.o.listen).then((c) => c.service(Echo, { timeoutMs: 300 }).Echo({ key: "k" })).catch((x) => x);
    expect([Code.Unavailable, Code.DeadlineExceeded]).toContain(e.code);
  });

  it("validates toxics with messages that say what is wrong", () => {
    expect(() => validateToxic({ stream: "sideways" as never, spec: { type: "latency", latency: 1 } })).toThrow(/stream must be/);
    expect(() => validateToxic({ stream: "upstream", spec: { type: "latency" } as never })).toThrow(/latency needs latency/);
    expect(() => validateToxic({ stream: "upstream", spec: { type: "nope" } as never })).toThrow(/unknown toxic type "nope"/);
    expect(() => validateToxic({ stream: "upstream", toxicity: 2, spec: { type: "timeout", timeout: 0 } })).toThrow(/toxicity/);
  });
});

describe("containerd's failpoint grammar", () => {
  it("spends counts term by term", () => {
    const fp = new Failpoint("Start", "1*off->2*error(please retry)->1*delay(5)");
    expect([fp.next(), fp.next(), fp.next(), fp.next(), fp.next()]).toEqual([
      { type: "off" },
      { type: "error", message: "please retry" },
      { type: "error", message: "please retry" },
      { type: "delay", ms: 5 },
      null,
    ]);
    expect(fp.toString()).toBe("0*off->0*error(please retry)->0*delay(5)");
  });

  it("rejects what containerd rejects", () => {
    for (const bad of ["error(x)", "1*err(x)", "1*error()", "1*delay(x)", "1*off-1*off", "x*off"]) expect(() => new Failpoint("M", bad), bad).toThrow(FailpointSyntaxError);
  });

  it("fails the named method through a ttrpc interceptor, others untouched", async () => {
    const table = new FailpointTable();
    table.loadPrefixed({ "io.containerd.runtime.v2.shim.failpoint.Echo": "1*off->1*error(no hard feelings)", other: "x" }, "io.containerd.runtime.v2.shim.failpoint.");
    const { server, echo } = await echoBehindProxy();
    server.use(failpointInterceptor(table));
    expect((await echo.Echo({ key: "1" })).key).toBe("1");
    const e = await echo.Echo({ key: "2" }).catch((x) => x);
    expect([e.code, e.message]).toEqual([Code.Unknown, "no hard feelings"]);
    expect((await echo.Echo({ key: "3" })).key).toBe("3");
  });
});

describe("event faults", () => {
  function recorder(): EventSink & { topics: string[] } {
    const topics: string[] = [];
    return { topics, publish: (t) => void topics.push(t), flush: async () => {}, close() {} };
  }
  const pub = (s: EventSink, topic: string) => s.publish(topic, ev.TaskStart, { containerId: "c" });

  it("drops, duplicates and reorders by topic and count", async () => {
    const inner = recorder();
    const s = new FaultyEventSink(inner, parseEventFaults('[{"action":"drop","topic":"/tasks/exit","count":1},{"action":"duplicate","topic":"/tasks/start"}]'));
    for (const t of ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/exit"]) pub(s, t);
    expect(inner.topics).toEqual(["/tasks/create", "/tasks/start", "/tasks/start", "/tasks/exit"]);
    const inner2 = recorder();
    const r = new FaultyEventSink(inner2, [{ action: "reorder", window: 2 }]);
    for (const t of ["/tasks/create", "/tasks/start", "/tasks/exit"]) pub(r, t);
    await r.flush(100);
    expect(inner2.topics).toEqual(["/tasks/start", "/tasks/create", "/tasks/exit"]);
  });

  it("delays an event, and flush waits for it", async () => {
    const inner = recorder();
    const s = new FaultyEventSink(inner, [{ action: "delay", topic: "/tasks/start", ms: 50 }]);
    pub(s, "/tasks/start");
    pub(s, "/tasks/exit");
    expect(inner.topics).toEqual(["/tasks/exit"]);
    await s.flush(1000);
    expect(inner.topics).toEqual(["/tasks/exit", "/tasks/start"]);
  });

  it("says what is wrong with a rule", () => {
    expect(() => parseEventFaults('{"action":"drop"}')).toThrow(/want a JSON list/);
    expect(() => parseEventFaults('[{"action":"explode"}]')).toThrow(/\[0\]\.action/);
    expect(() => parseEventFaults('[{"action":"delay"}]')).toThrow(/delay needs ms/);
  });
});
