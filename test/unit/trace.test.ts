// The trace recorder, its hooks at the interfaces, the ordering checker and
// the renderers, on synthetic traces and on real ttrpc calls.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { TraceRecorder, processTracer, resetProcessTracer, summarize, TRACE_ENV, type TraceRecord } from "../../src/trace/recorder";
import { traceInterceptor } from "../../src/trace/interceptor";
import { TracedTransport } from "../../src/trace/agent-wire";
import { TracedEventSink } from "../../src/trace/event-sink";
import { FileWatch, recordFile } from "../../src/trace/files";
import { checkOrdering, type TracedEvent } from "../../src/contract/ordering-check";
import { buildModel, parseTrace, readTrace, ARROW_KINDS } from "../../src/trace/model";
import { renderHtml } from "../../src/trace/html";
import { renderMermaid } from "../../src/trace/mermaid";
import { renderMarkdown } from "../../src/trace/markdown";
import { Server, Client, notFound } from "../../src/ttrpc";
import { Health } from "../../src/gen/grpc";
import { UnixTransport } from "../../src/agent/transport/unix";
import { KeyValue } from "../../src/gen/ttrpc";
import * as ev from "../../src/gen/containerd.events";
import type { EventSink } from "../../src/shim/publisher";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-trace-"));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const lines = (f: string): TraceRecord[] =>
  fs
    .readFileSync(f, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));

describe("recorder", () => {
  it("writes one JSON line per record with monotonic and wall time", () => {
    const f = path.join(tmpdir(), "t.jsonl");
    const r = new TraceRecorder(f, "shim");
    for (let i = 0; i < 50; i++) r.record("x", { n: i, big: 10n, buf: Buffer.from("hi"), pid: 1, role: "agent" });
    r.close();
    const got = lines(f);
    expect(got).toHaveLength(50);
    for (let i = 1; i < got.length; i++) expect(got[i].t).toBeGreaterThanOrEqual(got[i - 1].t);
    expect(got[0]).toMatchObject({ v: 1, pid: process.pid, role: "shim", kind: "x", n: 0, big: "10", buf: Buffer.from("hi").toString("base64") });
    expect(Date.parse(got[0].wall)).toBeGreaterThan(Date.now() - 60_000);
    // Microseconds of CLOCK_MONOTONIC, the clock every process shares.
    expect(Math.abs(got[0].t - Number(process.hrtime.bigint() / 1000n))).toBeLessThan(60_000_000);
  });

  it("stops quietly, without a word on stderr, when it cannot write", () => {
    const d = tmpdir();
    fs.writeFileSync(path.join(d, "file"), "");
    const writes: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((c: string) => (writes.push(String(c)), true)) as typeof process.stderr.write;
    const warn = process.emitWarning;
    process.emitWarning = ((w: string) => void writes.push(w)) as typeof process.emitWarning;
    try {
      const r = new TraceRecorder(path.join(d, "file", "t.jsonl"), "shim-start");
      r.record("a");
      r.record("b");
      expect(r.error).toMatch(/ENOTDIR|EEXIST/);
    } finally {
      process.stderr.write = orig;
      process.emitWarning = warn;
    }
    expect(writes).toEqual([]);
  });

  it("writes a file per process in directory mode", () => {
    const d = tmpdir();
    const r = new TraceRecorder(d + "/", "agent");
    r.record("hello");
    r.close();
    expect(fs.readdirSync(d)).toEqual([`agent-${process.pid}.jsonl`]);
    expect(readTrace(d)[0].kind).toBe("hello");
  });

  it("is off, and creates nothing, without SHIMLAB_TRACE", () => {
    resetProcessTracer();
    expect(processTracer("shim", {})).toBeNull();
    resetProcessTracer();
    const f = path.join(tmpdir(), "sub", "t.jsonl");
    const env: NodeJS.ProcessEnv = { [TRACE_ENV]: f };
    const r = processTracer("shim", env)!;
    expect(r.file).toBe(f);
    expect(fs.existsSync(f)).toBe(false); // opened on the first record only
    r.record("a");
    expect(fs.existsSync(f)).toBe(true);
    resetProcessTracer();
  });

  it("hands children an absolute path", () => {
    resetProcessTracer();
    const env: NodeJS.ProcessEnv = { [TRACE_ENV]: "rel/t.jsonl" };
    processTracer("shim", env);
    expect(env[TRACE_ENV]).toBe(path.resolve("rel/t.jsonl"));
    resetProcessTracer();
  });

  it("keeps every line whole when several processes append to one file", async () => {
    const f = path.join(tmpdir(), "shared.jsonl");
    const mod = path.resolve(__dirname, "../../src/trace/recorder.ts");
    const script = `const { TraceRecorder } = require(${JSON.stringify(mod)});
      const r = new TraceRecorder(${JSON.stringify(f)}, "p" + process.argv.at(-1));
      for (let i = 0; i < 400; i++) r.record("line", { i, pad: "x".repeat(300 + (i % 50) * 20) });`;
    const runs = [0, 1, 2, 3].map(
      (n) =>
        new Promise<number>((resolve) => {
          const c = spawn(process.execPath, ["--import", "tsx", "-e", script, String(n)], { stdio: "inherit" });
          c.on("exit", (code) => resolve(code ?? -1));
        }),
    );
    expect(await Promise.all(runs)).toEqual([0, 0, 0, 0]);
    const got = lines(f); // JSON.parse throws on a torn line
    expect(got).toHaveLength(1600);
    for (const p of ["p0", "p1", "p2", "p3"]) {
      const mine = got.filter((r) => r.role === p).map((r) => r.i);
      expect(mine).toEqual([...Array(400).keys()]);
    }
  }, 30_000);

  it("summarises a large message to its scalar fields", () => {
    const big = { key: "k", value: "v".repeat(5000) };
    expect(summarize(KeyValue, big)).toEqual({ key: "k", value: "v".repeat(200) + "…" });
    expect(summarize(KeyValue, { key: "a", value: "b" })).toEqual({ key: "a", value: "b" });
  });
});

describe("hooks at the interfaces", () => {
  async function healthServer(trace?: TraceRecorder): Promise<string> {
    const d = tmpdir();
    const sock = path.join(d, "h.sock");
    const server = new Server();
    if (trace) server.use(traceInterceptor(trace, "containerd", "shim"));
    server.register(Health, {
      Check: () => ({ status: 1 }),
      Version: () => {
        throw notFound("no version here");
      },
    });
    const l = net.createServer();
    server.serve(l);
    await new Promise<void>((r) => l.listen(sock, r));
    cleanups.push(() => server.close());
    return sock;
  }

  it("the server interceptor records calls and replies with their stream ids", async () => {
    const f = path.join(tmpdir(), "t.jsonl");
    const rec = new TraceRecorder(f, "shim");
    const sock = await healthServer(rec);
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    const h = c.service(Health);
    await h.Check({ service: "x" });
    await expect(h.Version({ service: "" })).rejects.toThrow(/no version/);
    const got = lines(f);
    expect(got.map((r) => [r.kind, r.method, r.stream])).toEqual([
      ["rpc.call", "Check", 1],
      ["rpc.reply", "Check", 1],
      ["rpc.call", "Version", 3],
      ["rpc.reply", "Version", 3],
    ]);
    expect(got[0]).toMatchObject({ from: "containerd", to: "shim", req: { service: "x" } });
    expect(got[1]).toMatchObject({ from: "shim", to: "containerd", ok: true, id: got[0].id, res: { status: "SERVING" } });
    expect(got[3]).toMatchObject({ ok: false, code: "NotFound", error: "no version here: not found" });
  });

  it("the transport tap sees the agent calls from the frames alone", async () => {
    const f = path.join(tmpdir(), "t.jsonl");
    const rec = new TraceRecorder(f, "shim");
    const sock = await healthServer();
    const t = new TracedTransport(new UnixTransport(sock), rec);
    const c = new Client(await t.connect(new AbortController().signal));
    const h = c.service(Health);
    const [a, b] = await Promise.all([h.Check({ service: "one" }), h.Check({ service: "two" })]);
    expect(a.status).toBe(1);
    expect(b.status).toBe(1);
    await expect(h.Version({ service: "" })).rejects.toThrow(/no version/);
    c.close();
    await c.closed;
    const got = lines(f).filter((r) => r.kind.startsWith("rpc."));
    expect(got.map((r) => `${r.kind} ${r.method} s${r.stream}`)).toEqual([
      "rpc.call Check s1",
      "rpc.call Check s3",
      "rpc.reply Check s1",
      "rpc.reply Check s3",
      "rpc.call Version s5",
      "rpc.reply Version s5",
    ]);
    expect(got[0]).toMatchObject({ from: "shim", to: "agent", service: "grpc.Health", req: { service: "one" } });
    expect(got[2]).toMatchObject({ from: "agent", to: "shim", ok: true, res: { status: "SERVING" } });
    expect(got[5]).toMatchObject({ ok: false, code: "NotFound" });
    expect(lines(f).map((r) => r.kind)).toContain("agent.disconnect");
  });

  it("the event sink records each event as it is handed on", () => {
    const f = path.join(tmpdir(), "t.jsonl");
    const sent: string[] = [];
    const inner: EventSink = { publish: (topic) => void sent.push(topic), flush: async () => {}, close: () => {} };
    const sink = new TracedEventSink(inner, new TraceRecorder(f, "shim"));
    sink.publish("/tasks/start", ev.TaskStart, { containerId: "c1", pid: 7 });
    expect(sent).toEqual(["/tasks/start"]);
    expect(lines(f)[0]).toMatchObject({ kind: "event", from: "shim", to: "containerd", topic: "/tasks/start", event: { containerId: "c1", pid: 7 } });
  });
});

describe("files", () => {
  const settle = () => new Promise((r) => setTimeout(r, 100));

  it("sees files, fifos, sockets and nested directories come and go, and keeps out what it is told to", async () => {
    const d = tmpdir();
    const f = path.join(tmpdir(), "t.jsonl");
    const rec = new TraceRecorder(f, "containerd");
    fs.writeFileSync(path.join(d, "before"), "x");
    const w = new FileWatch(rec, [{ dir: d, ignore: (p) => p.startsWith(path.join(d, "rootfs")) }]);
    cleanups.push(() => w.close());
    fs.mkdirSync(path.join(d, "b1", "deep"), { recursive: true });
    await settle();
    fs.writeFileSync(path.join(d, "b1", "deep", "config.json"), "{}");
    fs.mkdirSync(path.join(d, "rootfs", "bin"), { recursive: true });
    const srv = net.createServer().listen(path.join(d, "b1", "s.sock"));
    await new Promise((r) => srv.once("listening", r));
    await settle();
    srv.close();
    fs.rmSync(path.join(d, "b1"), { recursive: true });
    await settle();
    const got = lines(f).map((r) => `${r.op} ${r.type} ${path.relative(d, String(r.path))}`);
    expect(got).toEqual(
      expect.arrayContaining(["existing file before", "created dir b1", "created dir b1/deep", "created file b1/deep/config.json", "created socket b1/s.sock", "removed socket b1/s.sock", "removed dir b1"]),
    );
    expect(got.filter((l) => l.includes("rootfs"))).toEqual([]);
    expect(got.filter((l) => l === "created dir b1")).toHaveLength(1);
  });

  it("a file told of twice (a watcher and its maker) is listed once", () => {
    const d = tmpdir();
    const f = path.join(tmpdir(), "t.jsonl");
    const rec = new TraceRecorder(f, "shim");
    fs.writeFileSync(path.join(d, "address"), "unix:///x");
    recordFile(rec, path.join(d, "address"));
    recordFile(rec, path.join(d, "address"));
    recordFile(rec, path.join(d, "missing")); // nothing to tell
    const got = lines(f);
    // Gone a second later (sooner, it would be an atomic write's temporary and left out).
    got.push({ ...got[0], t: got[0].t + 1_000_000, op: "removed" }, { ...got[0], t: got[0].t + 1_000_001, op: "removed" });
    const m = buildModel(got);
    expect(m.files.map((x) => `${x.op} ${x.type}`)).toEqual(["created file", "removed file"]);
    // Renamed into place at once: the temporary is left out, its new name stays.
    const tmp = { ...got[0], path: path.join(d, ".address") };
    const renamed = [tmp, { ...tmp, t: tmp.t + 1000, op: "removed" }, { ...got[0], t: tmp.t + 1001 }];
    expect(buildModel(renamed).files.map((x) => `${x.op} ${path.basename(x.path)}`)).toEqual(["created address"]);
    // Short-lived but not renamed (a socket of a quick run): kept.
    expect(buildModel([got[0], { ...got[0], t: got[0].t + 1000, op: "removed" }]).files).toHaveLength(2);
  });
});

// A synthetic run: one container with an exec, in the order containerd expects.
let clock = 1_000_000;
function r(kind: string, f: Record<string, unknown>): TraceRecord {
  clock += 1000;
  return { v: 1, t: clock, wall: "", pid: 1, role: "shim", kind, ...f };
}
const evt = (topic: string, event: Record<string, unknown>) => r("event", { from: "shim", to: "containerd", topic, event });
const call = (id: string, method: string, req: Record<string, unknown>) => r("rpc.call", { id, from: "containerd", to: "shim", method, stream: 1, req });
const reply = (id: string, method: string, ok = true) => r("rpc.reply", { id, from: "shim", to: "containerd", method, stream: 1, ok });

function goodRun(): TraceRecord[] {
  return [
    r("note", { text: "1. the container" }),
    r("exec.call", { id: "s", from: "containerd", to: "shim", action: "start", task: "c1" }),
    r("exec.reply", { id: "s", from: "shim", to: "containerd", action: "start", code: 0, address: "unix:///x" }),
    r("proc.start", { action: "daemon" }),
    call("1", "Create", { id: "c1" }),
    r("vm.start", { from: "shim", to: "vm", hypervisor: "none" }),
    r("vm.started", { from: "vm", to: "shim", ok: true, vmPid: 9 }),
    r("rpc.call", { id: "a1", from: "shim", to: "agent", method: "CreateContainer", stream: 1, req: { containerId: "c1" } }),
    r("process.spawn", { from: "agent", to: "c1", proc: "c1", procPid: 10, phase: "create" }),
    r("rpc.reply", { id: "a1", from: "agent", to: "shim", method: "CreateContainer", stream: 1, ok: true }),
    evt("/tasks/create", { containerId: "c1" }),
    reply("1", "Create"),
    call("2", "Start", { id: "c1" }),
    evt("/tasks/start", { containerId: "c1" }),
    reply("2", "Start"),
    call("3", "Exec", { id: "c1", execId: "e1" }),
    evt("/tasks/exec-added", { containerId: "c1", execId: "e1" }),
    reply("3", "Exec"),
    call("4", "Start", { id: "c1", execId: "e1" }),
    r("process.spawn", { from: "agent", to: "c1/e1", proc: "c1/e1", procPid: 11, phase: "exec" }),
    evt("/tasks/exec-started", { containerId: "c1", execId: "e1" }),
    reply("4", "Start"),
    r("process.exit", { from: "c1/e1", to: "agent", proc: "c1/e1", procPid: 11, status: 0 }),
    evt("/tasks/exit", { containerId: "c1", id: "e1" }),
    r("process.exit", { from: "c1", to: "agent", proc: "c1", procPid: 10, status: 0 }),
    evt("/tasks/oom", { containerId: "c1" }),
    evt("/tasks/exit", { containerId: "c1", id: "c1" }),
    call("5", "Delete", { id: "c1" }),
    evt("/tasks/delete", { containerId: "c1" }),
    reply("5", "Delete"),
    r("file", { op: "created", path: "/b/c1/address", type: "file" }),
  ];
}

describe("ordering checker", () => {
  const events = (rs: TraceRecord[]): TracedEvent[] =>
    rs.map((x, i) => ({ x, i })).filter(({ x }) => x.kind === "event").map(({ x, i }) => ({ i, t: x.t, topic: String(x.topic), event: x.event as Record<string, unknown> }));

  it("finds nothing wrong in a run in containerd's order", () => {
    expect(checkOrdering(events(goodRun()))).toEqual([]);
    expect(buildModel(goodRun()).violations).toEqual([]);
  });

  it("flags each broken MUST rule where it shows", () => {
    const bad = (topics: [string, Record<string, unknown>][]) => checkOrdering(topics.map(([topic, event], i) => ({ i, t: i, topic, event }))).map((v) => `${v.i}:${v.rule}`);
    expect(bad([["/tasks/start", { containerId: "c" }]])).toEqual(["0:events.start-after-create"]);
    expect(bad([["/tasks/create", { containerId: "c" }], ["/tasks/exit", { containerId: "c", id: "c" }]])).toEqual(["1:events.exit-after-start"]);
    expect(bad([["/tasks/create", { containerId: "c" }], ["/tasks/start", { containerId: "c" }], ["/tasks/delete", { containerId: "c" }]])).toEqual(["2:events.delete-after-exit"]);
    // Never started: TaskDelete may follow TaskCreate directly.
    expect(bad([["/tasks/create", { containerId: "c" }], ["/tasks/delete", { containerId: "c" }]])).toEqual([]);
    expect(bad([["/tasks/exec-added", { containerId: "c", execId: "e" }]])).toEqual(["0:events.exec-added-after-create"]);
    expect(bad([["/tasks/create", { containerId: "c" }], ["/tasks/exec-started", { containerId: "c", execId: "e" }]])).toEqual(["1:events.exec-started-after-added"]);
    expect(bad([["/tasks/create", { containerId: "c" }], ["/tasks/exit", { containerId: "c", id: "e" }]])).toEqual(["1:events.exec-exit-after-started"]);
    const initBeforeExec: [string, Record<string, unknown>][] = [
      ["/tasks/create", { containerId: "c" }],
      ["/tasks/start", { containerId: "c" }],
      ["/tasks/exec-added", { containerId: "c", execId: "e" }],
      ["/tasks/exec-started", { containerId: "c", execId: "e" }],
      ["/tasks/exit", { containerId: "c", id: "c" }],
      ["/tasks/exit", { containerId: "c", id: "e" }],
      ["/tasks/oom", { containerId: "c" }],
      ["/tasks/exit", { containerId: "c", id: "c" }],
    ];
    expect(bad(initBeforeExec)).toEqual(["4:events.init-exit-after-exec-exits", "6:events.oom-before-exit", "7:events.once"]);
  });

  it("flags a call that returned before publishing its event", () => {
    const rs = goodRun();
    // Move /tasks/start after Start's reply, as a delayed event would be.
    const i = rs.findIndex((x) => x.topic === "/tasks/start");
    const [e] = rs.splice(i, 1);
    e.t = rs[i].t + 1;
    rs.splice(i + 1, 0, e);
    const m = buildModel(rs);
    expect(m.violations.map((v) => `${v.rule} ${v.level}`)).toEqual(["events.event-before-reply SHOULD"]);
    expect(m.violations[0].message).toMatch(/Start\(c1\) returned before publishing TaskStart/);
  });
});

describe("model and renderers", () => {
  it("draws an arrow per call, reply, event and process change, and a lane per party", () => {
    const rs = goodRun();
    const m = buildModel(rs);
    expect(m.arrows).toHaveLength(rs.filter((x) => ARROW_KINDS.has(x.kind)).length);
    expect(m.lanes.map((l) => l.id)).toEqual(["containerd", "shim", "vm", "agent", "proc:c1", "proc:c1/e1"]);
    expect(m.rows.filter((x) => x.type === "note")).toHaveLength(1);
    expect(m.rows.filter((x) => x.type === "mark")).toEqual([expect.objectContaining({ lane: "shim", text: "shim daemon pid 1 up" })]);
    expect(m.arrows.find((a) => a.label.startsWith("Create ✓"))!.label).toMatch(/\(\d+\.\d ms\)$/);
    expect(m.files).toEqual([expect.objectContaining({ op: "created", path: "/b/c1/address", during: "Delete(id=c1)" })]);
    const states = Object.fromEntries(m.states.map((s) => [s.proc, s.steps.map((x) => x.status).join(">")]));
    expect(states).toEqual({ c1: "created>running>stopped>deleted", "c1/e1": "created>running>stopped" });
  });

  it("reports an illegal move of a process's state machine", () => {
    const rs = goodRun();
    rs.push(call("9", "Start", { id: "c1" }), reply("9", "Start"));
    const m = buildModel(rs);
    expect(m.states.find((s) => s.proc === "c1")!.illegal).toEqual([expect.objectContaining({ op: "start", from: "deleted" })]);
  });

  it("marks a violation in red in the page and in Mermaid", () => {
    const rs = goodRun().filter((x) => x.topic !== "/tasks/start");
    const m = buildModel(rs);
    expect(m.violations.map((v) => v.rule).sort()).toEqual(["events.event-before-reply", "events.exit-after-start"]);
    const html = renderHtml(m, { title: "t" });
    expect(html.match(/<g class="arrow[^"]*"/g)).toHaveLength(m.arrows.length);
    expect(html.match(/<g class="arrow event violation"/g)).toHaveLength(1);
    expect(html).toContain("TaskExit for c1 without a TaskStart before it");
    expect(html).not.toMatch(/(src|href)=["']?https?:|<link|@import|url\(["']?http/); // nothing to fetch
    const mmd = renderMermaid(m);
    expect(mmd.startsWith("sequenceDiagram\n")).toBe(true);
    expect(mmd).toContain("participant P1 as c1");
    expect(mmd).toMatch(/shim-\)containerd: ⚠ \/tasks\/exit/);
    expect(mmd).toContain("Note over shim,containerd: MUST events.exit-after-start violated: TaskExit for c1 without a TaskStart before it");
    expect(mmd.split("\n").filter((l) => /->>|-->>|-\)/.test(l))).toHaveLength(m.arrows.length);
    expect(mmd).toContain("Note right of shim: shim daemon pid 1 up");
  });

  it("draws the Sandbox API's calls and each sandbox's life (containerd 2.x, sandboxer = shim)", () => {
    const SB = "containerd.runtime.sandbox.v1.Sandbox";
    const sbCall = (id: string, method: string) => r("rpc.call", { id, from: "containerd", to: "shim", service: SB, method, stream: 1, req: { sandboxId: "sb1" } });
    const sbReply = (id: string, method: string, ok = true, extra: Record<string, unknown> = {}) => r("rpc.reply", { id, from: "shim", to: "containerd", service: SB, method, stream: 1, ok, ...extra });
    const rs = [
      sbCall("1", "CreateSandbox"),
      sbReply("1", "CreateSandbox", true, { res: {} }),
      sbCall("2", "StartSandbox"),
      r("vm.start", { from: "shim", to: "vm", hypervisor: "none" }),
      r("vm.started", { from: "vm", to: "shim", ok: true, vmPid: 9 }),
      sbReply("2", "StartSandbox", true, { res: { pid: 9 } }),
      sbCall("3", "Platform"),
      sbReply("3", "Platform"),
      // A task of the pod on the same shim: the Task API's names stay bare.
      call("4", "Create", { id: "c1" }),
      reply("4", "Create"),
      sbCall("5", "StopSandbox"),
      sbCall("6", "WaitSandbox"),
      sbReply("6", "WaitSandbox", true, { res: { exitStatus: 137 } }),
      sbReply("5", "StopSandbox"),
      sbCall("7", "StopSandbox"),
      sbReply("7", "StopSandbox", false, { code: "NotFound", error: "sandbox sb1 is already stopped: not found" }),
      sbCall("8", "ShutdownSandbox"),
      sbReply("8", "ShutdownSandbox"),
    ];
    const m = buildModel(rs);
    const labels = m.arrows.map((a) => a.label.replace(/ \(\d+\.\d ms\)$/, ""));
    expect(labels).toContain("Sandbox.CreateSandbox(sandboxId=sb1) ·s1");
    expect(labels).toContain("Sandbox.Platform ✓");
    expect(labels).toContain("Sandbox.WaitSandbox ✓ exitStatus=137");
    expect(labels).toContain("Sandbox.StopSandbox ✗ NotFound: sandbox sb1 is already stopped: not found");
    expect(labels).toContain("Create(id=c1) ·s1");
    expect(m.sandboxes).toHaveLength(1);
    const sb = m.sandboxes[0];
    expect(sb.sandbox).toBe("sb1");
    expect(sb.steps.map((x) => x.status).join(">")).toBe("created>starting>ready>stopping>stopped>shutdown");
    expect(sb.illegal).toEqual([]);
    expect(sb.calls.map((c) => (c.ok ? c.method : `${c.method} ✗ ${c.code}`))).toEqual(["CreateSandbox", "StartSandbox", "Platform", "WaitSandbox", "StopSandbox", "StopSandbox ✗ NotFound", "ShutdownSandbox"]);
    // The task is a process of its own, not a sandbox.
    expect(m.states.map((x) => x.proc)).toEqual(["c1"]);
    const html = renderHtml(m, { title: "t" });
    expect(html).toContain("<h2>Each sandbox (Sandbox API)</h2>");
    expect(html).toMatch(/<div class="machine sandbox"><div class="proc">sb1<\/div>/);
    expect(html).toContain("StopSandbox ✗ NotFound");
    expect(renderMarkdown(m)).toMatch(/- `sb1`: \*\*created\*\*.*\*\*shutdown\*\*/);
    // A start after shutdown is an illegal move of the sandbox's table, and said so.
    const bad = buildModel([...rs, sbCall("9", "StartSandbox"), sbReply("9", "StartSandbox")]);
    expect(bad.sandboxes[0].illegal).toEqual([expect.objectContaining({ op: "start", from: "shutdown" })]);
    expect(renderHtml(bad, { title: "t" })).toContain("⚠ illegal start in state shutdown");
    // No Sandbox API in a trace: the page says so.
    expect(renderHtml(buildModel(goodRun()), { title: "t" })).toContain("No sandbox was created through the Sandbox API");
  });

  it("reads back what it wrote, and refuses a line that is not a trace line", () => {
    const d = tmpdir();
    const f = path.join(d, "t.jsonl");
    fs.writeFileSync(f, goodRun().map((x) => JSON.stringify(x)).join("\n") + "\n");
    expect(readTrace(f)).toHaveLength(goodRun().length);
    expect(parseTrace(fs.readFileSync(f, "utf8"))[0].kind).toBe("note");
    fs.appendFileSync(f, "{not json\n");
    expect(() => readTrace(f)).toThrow(/t\.jsonl:\d+: not a trace line/);
  });
});

describe("no cost when off", () => {
  it("the shim, the pod and the agent never import the trace modules; they load them only behind SHIMLAB_TRACE", () => {
    const src = path.resolve(__dirname, "../../src");
    const files = ["shim", "pod", "agent", "hypervisor", "mock-agent", "ttrpc"].flatMap((d) =>
      fs
        .readdirSync(path.join(src, d), { recursive: true })
        .map(String)
        .filter((f) => f.endsWith(".ts"))
        .map((f) => path.join(src, d, f)),
    );
    const loads: string[] = [];
    for (const f of files) {
      const text = fs.readFileSync(f, "utf8");
      expect(text, f).not.toMatch(/^import[^;]*from "\.\.?\/(\.\.\/)*trace\//m);
      text.split("\n").forEach((line, n) => {
        if (/require\("(\.\.\/)+trace\//.test(line)) {
          loads.push(`${path.relative(src, f)}:${n + 1}`);
          // Each load sits behind the variable, on its line or the one above.
          const here = line + text.split("\n")[n - 1];
          expect(here, `${f}:${n + 1}`).toMatch(/process\.env\.SHIMLAB_TRACE/);
        }
      });
    }
    expect(loads.length).toBeGreaterThanOrEqual(4);
  });
});
