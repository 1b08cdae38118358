// Running one scenario: the world up, faults scheduled, steps run (serial,
// parallel, abort on a failed expectation), everything recorded in a Jepsen
// history, then containerd's teardown, a leak check and the verdict.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { buildBusyboxRootfs, findBusybox } from "../harness/rootfs";
import { listProcesses, mountsUnder, shimlabProcesses } from "../harness/leaks";
import type { ClientStdio } from "../harness/fifo";
import { removeCgroupDirs } from "../mock-agent/runtime/runc";
import { Code, RpcError } from "../ttrpc/status";
import { Status_names } from "../gen/containerd.v1.types";
import { History, outcomeOf } from "./history";
import { World, type ContainerHandle, type WorldOptions } from "./world";
import { activateFault, healFault, kindOf } from "../faults/kinds";
import { signalName } from "../faults/kinds/process";
import { citation } from "../contract/cite";
import { runChecks } from "./checks";
import { CtrDriver } from "./ctr-driver";
import type { FaultDef, HistoryOp, OpStep, Scenario, ScenarioResult, Step } from "./types";

export interface RunOptions extends WorldOptions {
  /** Names of mutants this run carries (for the report). */
  mutantNames?: string[];
  rootfs?: string;
  onProgress?: (line: string) => void;
}

const PROCESS_SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RESOURCES_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
const DEFAULT_CALL_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What the emulator driver needs from the machine; null when it has it. */
export function missingPrerequisites(): string | null {
  const lack: string[] = [];
  if (process.getuid?.() !== 0) lack.push("root");
  if (!findBusybox()) lack.push("busybox-static");
  if (!process.env.PATH?.split(":").some((d) => fs.existsSync(path.join(d, "runc")))) lack.push("runc");
  return lack.length ? `needs ${lack.join(", ")}` : null;
}

let sharedRootfs: string | null = null;
function defaultRootfs(): string {
  if (!sharedRootfs) {
    const d = path.join(os.tmpdir(), `shimlab-busybox-${process.getuid?.() ?? 0}`);
    fs.mkdirSync(d, { recursive: true });
    sharedRootfs = buildBusyboxRootfs(d);
  }
  return sharedRootfs;
}

class Run {
  readonly history: History;
  readonly problems: string[] = [];
  /** The contract rules named by the steps that missed their expectation. */
  readonly problemRules: string[] = [];
  readonly faultLog: { time: number; fault: string; what: string }[] = [];
  aborted: string | null = null;
  ctr: CtrDriver | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly deadline: number;

  constructor(
    readonly s: Scenario,
    readonly w: World,
    readonly progress: (l: string) => void,
  ) {
    this.history = new History(() => w.now());
    this.deadline = performance.now() + s.timeout_ms;
    // What a factory-link fault did, when it did it (the take comes whenever the shim starts).
    if (w.factory)
      w.factory.onFault = (what) => {
        const f = s.faults.find((x) => x.scope === "factory-link");
        this.faultLog.push({ time: w.now(), fault: f?.name ?? "factory-link", what });
        this.progress(`    ! ${f?.name ?? "factory-link"}: ${what}`);
      };
  }

  left(): number {
    return Math.max(1, this.deadline - performance.now());
  }

  // ---- faults with a time window ----

  scheduleFaults(): void {
    for (const f of this.s.faults) {
      if (!kindOf(f).timed) continue;
      if (f.window?.after) continue; // started by its step
      if (f.window?.at_ms !== undefined) this.timers.push(setTimeout(() => void this.activate(f), f.window.at_ms));
      else if (!this.s.steps.some((st) => usesFault(st, f.name))) void this.activate(f);
    }
  }

  /** The faults whose window opens at this step, in place before the step's call goes out. */
  async onStep(id: string | undefined): Promise<void> {
    if (!id) return;
    await Promise.all(this.s.faults.filter((f) => f.window?.after === id).map((f) => this.activate(f)));
  }

  async activate(f: FaultDef): Promise<void> {
    const inv = this.history.invoke("nemesis", "start-fault", { value: f.name });
    const what = await activateFault(f, this.w);
    this.faultLog.push({ time: this.w.now(), fault: f.name, what });
    this.history.complete(inv, "info", { value: { fault: f.name, what } });
    this.progress(`    ! fault ${f.name}: ${what}`);
    if (f.window?.for_ms) this.timers.push(setTimeout(() => void this.heal(f), f.window.for_ms));
  }

  async heal(f: FaultDef): Promise<void> {
    const inv = this.history.invoke("nemesis", "stop-fault", { value: f.name });
    await healFault(f, this.w);
    this.faultLog.push({ time: this.w.now(), fault: f.name, what: "healed" });
    this.history.complete(inv, "info", { value: { fault: f.name, what: "healed" } });
    this.progress(`    ! healed ${f.name}`);
  }

  clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
  }

  // ---- steps ----

  async steps(list: Step[], proc: string): Promise<void> {
    for (const st of list) {
      if (this.aborted) return;
      if (performance.now() > this.deadline) {
        this.abort(`scenario timeout (${this.s.timeout_ms} ms) reached before ${st.where}`);
        return;
      }
      await this.onStep(st.id);
      if (st.kind === "parallel") {
        await Promise.all(st.branches.map((b, j) => this.steps(b, `${proc}.${j}`)));
        continue;
      }
      const n = st.repeat ?? 1;
      if (n === 1) await this.op(st, proc, 0);
      else await Promise.all(Array.from({ length: n }, (_, i) => this.op(st, `${proc}#${i}`, i)));
    }
  }

  abort(why: string): void {
    if (!this.aborted) {
      this.aborted = why;
      this.progress(`    aborted: ${why}`);
    }
  }

  private container(st: OpStep): ContainerHandle {
    const c = this.w.containers.get(st.container!);
    if (!c) throw new RpcError(Code.NotFound, `no container ${st.container}`);
    return c;
  }

  /** The Sandbox API pod's client (sandbox_api scenarios). */
  private sandbox() {
    if (this.w.down) throw new RpcError(Code.Unavailable, "containerd is down: no connection to the shim");
    const svc = this.w.pod?.link?.sandbox;
    if (!svc) throw new RpcError(Code.FailedPrecondition, "the pod has no shim yet (create-sandbox first)");
    return svc;
  }

  private task(c: ContainerHandle) {
    if (this.w.down) throw new RpcError(Code.Unavailable, "containerd is down: no connection to the shim");
    const task = c.link?.task;
    if (!task) throw new RpcError(Code.FailedPrecondition, `container ${c.id} has no shim yet (create it first)`);
    return task;
  }

  private stdioOf(c: ContainerHandle, execId?: string): ClientStdio {
    if (!execId) return c.stdio;
    const s = c.execStdio.get(execId);
    if (!s) throw new RpcError(Code.NotFound, `exec ${execId} has no client stdio`);
    return s;
  }

  async op(st0: OpStep, proc: string, i: number): Promise<void> {
    const sub = (x?: string) => x?.replaceAll("{i}", String(i));
    const st: OpStep = { ...st0, exec_id: sub(st0.exec_id), data: sub(st0.data) };
    const nemesis = ["kill-process", "pause-process", "resume-process", "containerd-down", "containerd-up", "reconnect", "inject", "heal"].includes(st.do);
    const inv = this.history.invoke(nemesis ? "nemesis" : proc, st.do, { container: st.container, exec_id: st.exec_id, step: st.id ?? st.where });
    const timeoutMs = Math.min(st.timeout_ms ?? (st.do === "wait" ? this.left() : DEFAULT_CALL_MS), this.left());
    let done: HistoryOp;
    try {
      const value = await this.perform(st, timeoutMs);
      done = this.history.complete(inv, nemesis ? "info" : "ok", { value });
    } catch (e) {
      const o = outcomeOf(e);
      done = this.history.complete(inv, o.type, { error: o.error });
    }
    const verdict = this.expectation(st, inv, done);
    const label = `${st.do}${st.container ? ` ${st.container}` : ""}${st.exec_id ? `/${st.exec_id}` : ""}`;
    const res = done.error ? `${done.type} ${done.error.code}` : done.type;
    this.progress(`    ${verdict ? "✗" : "·"} ${label} → ${res} (${(done.time - inv.time).toFixed(0)} ms)${verdict ? `: ${verdict}` : ""}`);
    if (verdict) {
      const rule = st.expect?.rule;
      this.problems.push(`${st.where}: ${label}: ${verdict}${rule ? ` (rule ${citation(rule)})` : ""}`);
      if (rule) this.problemRules.push(rule);
      if (st.abort_on_fail ?? this.s.abort_on_fail) this.abort(`${st.where}: ${label} did not meet its expectation`);
    }
  }

  /** Does the completion meet the step's expectation? The mismatch, or null. */
  private expectation(st: OpStep, inv: HistoryOp, done: HistoryOp): string | null {
    const x = st.expect ?? {};
    const want = x.outcome ?? (x.error ? "error" : "ok");
    const nemesis = done.process === "nemesis";
    const got = nemesis && done.type === "info" ? "ok" : done.type;
    const err = done.error ? `${done.error.code}: ${done.error.message}` : "";
    if (want === "answered" && got === "info") return `expected an answer (ok or an error), but the client gave up: ${err}`;
    if (want === "error" && got === "ok") return `expected an error${x.error ? ` (${[x.error].flat().join("|")})` : ""}, got ok ${JSON.stringify(done.value)}`;
    if (want !== "any" && want !== "answered" && want !== "error" && got !== want) return `expected ${want}${x.error ? ` (${[x.error].flat().join("|")})` : ""}, got ${got}${err ? ` (${err})` : ` ${JSON.stringify(done.value)}`}`;
    if (x.error && done.error && !([x.error].flat() as string[]).includes(done.error.code)) return `expected error ${[x.error].flat().join("|")}, got ${err}`;
    if (x.message && !(done.error?.message ?? "").includes(x.message)) return `expected an error message containing ${JSON.stringify(x.message)}, got ${JSON.stringify(done.error?.message ?? "")}`;
    const ms = done.time - inv.time;
    if (x.within_ms !== undefined && ms > x.within_ms) return `expected an answer within ${x.within_ms} ms, took ${ms.toFixed(0)} ms`;
    const v = (done.value ?? {}) as Record<string, unknown>;
    if (x.exit_status !== undefined && done.type === "ok" && v.exitStatus !== x.exit_status) return `expected exit status ${x.exit_status}, got ${JSON.stringify(v.exitStatus)}`;
    if (x.status !== undefined && done.type === "ok" && v.status !== x.status) return `expected status ${x.status}, got ${JSON.stringify(v.status)}`;
    if (x.fields && done.type === "ok") {
      const ev = (v.event ?? {}) as Record<string, unknown>;
      for (const [k, want] of Object.entries(x.fields)) if (ev[k] !== want) return `expected event field ${k} = ${JSON.stringify(want)}, got ${JSON.stringify(ev[k])}`;
    }
    return null;
  }

  private async perform(st: OpStep, timeoutMs: number): Promise<unknown> {
    const w = this.w;
    const call = { timeoutMs };
    if (this.ctr) {
      const v = await this.ctr.perform(st, timeoutMs);
      if (v !== undefined) return v;
    }
    switch (st.do) {
      case "create": {
        const c = this.container(st);
        if (!c.link?.task) await (w.pod ? w.joinPod(c) : w.startShim(c));
        const r = await this.task(c).Create({ id: c.id, bundle: c.bundle, stdin: c.stdio.stdin, stdout: c.stdio.stdout, stderr: c.stdio.stderr, terminal: !!c.def.terminal }, call);
        return { pid: r.pid };
      }
      case "start": {
        const c = this.container(st);
        return { pid: (await this.task(c).Start({ id: c.id, execId: st.exec_id ?? "" }, call)).pid };
      }
      case "exec": {
        const c = this.container(st);
        const io = w.emu.stdio(`${c.id}-${st.exec_id}`, { stdin: st.stdin, terminal: st.terminal });
        c.execStdio.set(st.exec_id!, io);
        const spec = { args: st.args, cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], terminal: !!st.terminal };
        await this.task(c).Exec({ id: c.id, execId: st.exec_id!, stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, terminal: !!st.terminal, spec: { typeUrl: PROCESS_SPEC_URL, value: Buffer.from(JSON.stringify(spec)) } }, call);
        return {};
      }
      case "kill": {
        const c = this.container(st);
        await this.task(c).Kill({ id: c.id, execId: st.exec_id ?? "", signal: Number(st.signal ?? 15), all: !!st.all }, call);
        return {};
      }
      case "wait": {
        const c = this.container(st);
        const r = await this.task(c).Wait({ id: c.id, execId: st.exec_id ?? "" }, call);
        return { exitStatus: r.exitStatus };
      }
      case "state": {
        const c = this.container(st);
        const r = await this.task(c).State({ id: c.id, execId: st.exec_id ?? "" }, call);
        return { status: Status_names[r.status] ?? String(r.status), exitStatus: r.exitStatus, pid: r.pid };
      }
      case "delete": {
        const c = this.container(st);
        const r = await this.task(c).Delete({ id: c.id, execId: st.exec_id ?? "" }, call);
        return { exitStatus: r.exitStatus, pid: r.pid };
      }
      case "pids": {
        const c = this.container(st);
        return { processes: (await this.task(c).Pids({ id: c.id }, call)).processes.length };
      }
      case "pause":
      case "resume": {
        const c = this.container(st);
        await (st.do === "pause" ? this.task(c).Pause({ id: c.id }, call) : this.task(c).Resume({ id: c.id }, call));
        return {};
      }
      case "stats": {
        const c = this.container(st);
        const r = await this.task(c).Stats({ id: c.id }, call);
        return { typeUrl: r.stats?.typeUrl };
      }
      case "connect": {
        const c = this.container(st);
        const r = await this.task(c).Connect({ id: c.id }, call);
        return { shimPid: r.shimPid, taskPid: r.taskPid };
      }
      case "update": {
        const c = this.container(st);
        await this.task(c).Update({ id: c.id, resources: { typeUrl: RESOURCES_URL, value: Buffer.from(JSON.stringify({ memory: { limit: st.memory_limit } })) } }, call);
        return {};
      }
      case "closeio": {
        const c = this.container(st);
        await this.task(c).CloseIO({ id: c.id, execId: st.exec_id ?? "", stdin: true }, call);
        return {};
      }
      case "shutdown": {
        const c = this.container(st);
        await this.task(c).Shutdown({ id: c.id, now: false }, call);
        return {};
      }
      case "shim-delete": {
        const c = this.container(st);
        const r = await w.runner.delete(c.id, c.bundle);
        if (r.result.code !== 0) throw new RpcError(Code.Unknown, `shim delete exited ${r.result.code}: ${r.result.combined.toString().trim().slice(0, 300)}`);
        return { exitStatus: r.response?.exitStatus ?? 0 };
      }
      case "write-stdin":
        this.stdioOf(this.container(st), st.exec_id).write(st.data!);
        return {};
      case "close-stdin":
        this.stdioOf(this.container(st), st.exec_id).closeStdin();
        return {};
      case "output": {
        const io = this.stdioOf(this.container(st), st.exec_id);
        const want = st.expect?.output;
        const until = performance.now() + (st.timeout_ms ?? 5_000);
        while (want !== undefined && !io.out().includes(want) && performance.now() < until) await sleep(20);
        const out = io.out();
        if (want !== undefined && !out.includes(want)) throw new RpcError(Code.NotFound, `stdout has no ${JSON.stringify(want)}: got ${JSON.stringify(out.slice(-200))}`);
        return { stdout: out.slice(-200) };
      }
      case "sleep":
        await sleep(Math.min(st.ms!, this.left()));
        return {};
      case "await-event": {
        const e = await w.waitEvent(
          (e) => e.topic === st.topic && (!st.container || e.event.containerId === st.container) && (!st.exec_id || e.event.execId === st.exec_id || e.event.id === st.exec_id),
          st.timeout_ms ?? Math.min(10_000, this.left()),
        );
        if (!e) throw new RpcError(Code.DeadlineExceeded, `no ${st.topic}${st.container ? ` for ${st.container}` : ""} arrived; got: ${w.events.map((x) => x.topic).join(", ") || "nothing"}`);
        return { seq: e.seq, event: e.event };
      }
      case "kill-process": {
        const sig = signalName(st.signal ?? "SIGKILL");
        const pids = await w.signal(st.target!, sig);
        if (!pids.length && st.target !== "containerd") throw new RpcError(Code.NotFound, `no ${st.target} process to signal`);
        return { signal: sig, pids };
      }
      case "pause-process":
      case "resume-process": {
        const pids = await w.signal(st.target!, st.do === "pause-process" ? "SIGSTOP" : "SIGCONT");
        return { pids };
      }
      case "containerd-down":
        await w.containerdDown();
        return { down: true };
      case "containerd-up":
        await w.containerdUp();
        return { up: true };
      case "reconnect":
        await w.reconnect();
        return {};
      case "create-sandbox": {
        if (w.down) throw new RpcError(Code.Unavailable, "containerd is down: no connection to the shim");
        const pod = w.pod!.link?.sandbox ? w.pod! : await w.startSandboxShim();
        await pod.link!.sandbox!.CreateSandbox(w.createSandboxRequest(), call);
        return {};
      }
      case "start-sandbox": {
        const r = await this.sandbox().StartSandbox({ sandboxId: w.sandboxId }, call);
        return { pid: r.pid };
      }
      case "stop-sandbox":
        await this.sandbox().StopSandbox({ sandboxId: w.sandboxId, timeoutSecs: 0 }, call);
        return {};
      case "wait-sandbox": {
        const r = await this.sandbox().WaitSandbox({ sandboxId: w.sandboxId }, call);
        return { exitStatus: r.exitStatus };
      }
      case "sandbox-status": {
        const r = await this.sandbox().SandboxStatus({ sandboxId: w.sandboxId }, call);
        return { status: r.state.replace(/^SANDBOX_/, ""), pid: r.pid };
      }
      case "ping-sandbox":
        await this.sandbox().PingSandbox({ sandboxId: w.sandboxId }, call);
        return {};
      case "shutdown-sandbox":
        await this.sandbox().ShutdownSandbox({ sandboxId: w.sandboxId }, call);
        w.podShutDown();
        return {};
      case "inject":
      case "heal": {
        const f = this.s.faults.find((x) => x.name === st.fault)!;
        await (st.do === "inject" ? this.activate(f) : this.heal(f));
        return { fault: f.name };
      }
    }
    throw new RpcError(Code.Unimplemented, `step ${st.do} is not implemented`);
  }

  // ---- containerd's teardown, then what was left behind ----

  async teardown(): Promise<void> {
    await this.teardownTasks();
    // The factory goes before the leak check, which then sees everything it booted gone too: its
    // pool with it, the agents it handed out with their shims.
    await this.w.factory?.stop();
  }

  private async teardownTasks(): Promise<void> {
    this.clearTimers();
    await this.w.healAll();
    if (this.ctr) return this.ctr.teardown();
    const pod = this.w.pod;
    // A pod shut down through the Sandbox API took its shim and every task with it (ShutdownSandbox refuses while tasks remain).
    const started = pod?.shutdown ? [] : [...this.w.containers.values()].filter((c) => c.address);
    // Short deadlines, and `delete` only after something failed: a leak check follows, and it must
    // see what a shim that looked clean left behind.
    const { clean } = await this.w.emu.teardown(
      started.map((c) => ({ id: c.id, bundle: c.bundle, address: c.address, task: c.link?.task, close: () => c.link?.drop(), sandboxed: !!pod })),
      { callMs: { kill: 3_000, wait: 5_000, delete: 5_000, shutdown: 3_000 }, shimDelete: "unclean" },
    );
    if (!pod || pod.shutdown) return;
    const link = pod.link;
    // containerd 2.x's CRI on RemovePodSandbox: StopSandbox, then ShutdownSandbox (the shim sandbox controller's Shutdown).
    if (link) await this.w.emu.teardownSandbox({ id: pod.id, bundle: pod.bundle, address: pod.address, sandbox: link.sandbox, close: () => link.drop() }, { callMs: 15_000, shimDelete: "unclean", tasksClean: clean });
  }

  async leaks(): Promise<string[]> {
    const parent = this.w.cgroupParent;
    const find = () => [
      ...shimlabProcesses([this.w.dir]).map((p) => `process ${p.pid} ${p.cmdline.slice(0, 120)}`),
      ...listProcesses()
        .filter((p) => {
          try {
            return fs.readFileSync(`/proc/${p.pid}/cgroup`, "utf8").includes(`:${parent}/`);
          } catch {
            return false;
          }
        })
        .map((p) => `container process ${p.pid} ${p.cmdline.slice(0, 80)}`),
    ];
    const deadline = Date.now() + 5_000;
    let left = find();
    while (left.length && Date.now() < deadline) {
      await sleep(100);
      left = find();
    }
    const mounts = mountsUnder(this.w.dir).map((m) => `mount ${m}`);
    const sockets: string[] = [];
    const sandbox = this.w.containers.get(this.w.sandboxId);
    const sock = (sandbox?.address ?? this.w.pod?.address)?.replace(/^unix:\/\//, "");
    if (sock && fs.existsSync(sock)) sockets.push(`shim socket ${sock}`);
    return [...left, ...mounts, ...sockets];
  }

  /** Whatever the scenario left, removed by force so the next one starts clean. */
  forceClean(): void {
    for (const p of shimlabProcesses([this.w.dir])) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    const parent = this.w.cgroupParent;
    for (const p of listProcesses()) {
      try {
        if (fs.readFileSync(`/proc/${p.pid}/cgroup`, "utf8").includes(`:${parent}/`)) process.kill(p.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    const sandbox = this.w.containers.get(this.w.sandboxId);
    const sock = (sandbox?.address ?? this.w.pod?.address)?.replace(/^unix:\/\//, "");
    if (sock) fs.rmSync(sock, { force: true });
    for (const m of mountsUnder(this.w.dir).reverse()) {
      try {
        execFileSync("umount", ["-l", m], { stdio: "ignore" });
      } catch {
        /* best effort */
      }
    }
  }

  removeCgroups(): void {
    const parent = this.w.cgroupParent;
    for (const id of this.w.containers.keys()) removeCgroupDirs(`${parent}/${this.w.sandboxId}/${id}`);
    removeCgroupDirs(`${parent}/${this.w.sandboxId}`);
    removeCgroupDirs(parent);
  }
}

function usesFault(st: Step, name: string): boolean {
  if (st.kind === "parallel") return st.branches.some((b) => b.some((x) => usesFault(x, name)));
  return st.do === "inject" && st.fault === name;
}

export { signalName };

export async function runScenario(s: Scenario, o: RunOptions = {}): Promise<ScenarioResult> {
  const t0 = performance.now();
  const progress = o.onProgress ?? (() => {});
  const base = { name: s.name, file: s.file, regression: s.regression, mutants: o.mutantNames };
  let skip = missingPrerequisites();
  if (!skip && s.driver === "containerd" && !process.env.PATH?.split(":").some((d) => fs.existsSync(path.join(d, "containerd")))) skip = "needs containerd";
  if (skip) return { ...base, verdict: "skip", reason: skip, ms: 0, checks: [], history: [], events: [], faults: [] };
  const w = new World(s, o, t0);
  w.rootfs = o.rootfs ?? defaultRootfs();
  const run = new Run(s, w, progress);
  let leaks: string[] = [];
  let crash: string | null = null;
  try {
    if (s.driver === "containerd") {
      run.ctr = new CtrDriver(s, w, w.shimEnv());
      await run.ctr.start();
    } else await w.start();
    run.scheduleFaults();
    // The timer also keeps the event loop alive: a step stuck on a promise nothing can settle becomes a timeout, not a silent exit.
    let timer: NodeJS.Timeout | undefined;
    const overtime = new Promise<void>((r) => (timer = setTimeout(r, s.timeout_ms + 5_000)));
    await Promise.race([run.steps(s.steps, "c0"), overtime.then(() => run.abort(`scenario timeout (${s.timeout_ms} ms) passed with steps still running`))]);
    clearTimeout(timer);
  } catch (e) {
    crash = `the runner failed: ${(e as Error).stack ?? e}`;
  }
  try {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([run.teardown(), new Promise<void>((_, rej) => (timer = setTimeout(() => rej(new Error("teardown took over 60 s")), 60_000)))]);
    clearTimeout(timer);
    leaks = await run.leaks();
  } catch (e) {
    crash ??= `teardown failed: ${(e as Error).message}`;
  } finally {
    run.forceClean();
    await run.ctr?.destroy();
    await w.close().catch(() => {});
    run.removeCgroups();
  }
  const checks = runChecks({ scenario: s, history: run.history, events: w.events, expectationProblems: run.problems, expectationRules: run.problemRules, aborted: run.aborted, leaks, crash });
  const verdict = checks.every((c) => c.ok) ? "pass" : "fail";
  return {
    ...base,
    verdict,
    reason: verdict === "fail" ? checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.problems[0] ?? "failed"}`).join("; ") : undefined,
    ms: Math.round(performance.now() - t0),
    checks,
    history: run.history.ops,
    events: w.events.map((e) => ({ seq: e.seq, time: e.time, topic: e.topic, event: e.event })),
    faults: run.faultLog,
  };
}
