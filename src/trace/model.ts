// From trace lines to what a reader needs: lanes, arrows in time order, the
// event timeline with the runtime-v2 ordering rules checked, each process's
// state machine, and the files. The HTML, Mermaid and Markdown views all draw
// this one model.
import fs from "node:fs";
import path from "node:path";
import type { TraceRecord } from "./recorder";
import { checkOrdering, rulesCheckedAt, rulesCheckedAtReply, type Violation, type TracedEvent } from "../contract/ordering-check";
import type { RuleId } from "../contract/rules";
import { ContainerStateMachine, StateMachine, type ContainerOperation, type ContainerStatus } from "../pod/state";
import { SandboxStateMachine, type SandboxLife, type SandboxOp } from "../pod/sandbox-state";

/** The service containerd 2.x's shim sandboxer calls: its arrows are labelled with it. */
export const SANDBOX_SERVICE = "containerd.runtime.sandbox.v1.Sandbox";

/** Record kinds drawn as an arrow between two lanes. */
export const ARROW_KINDS = new Set([
  "exec.call",
  "exec.reply",
  "rpc.call",
  "rpc.reply",
  "event",
  "vm.start",
  "vm.started",
  "vm.stop",
  "vm.stopped",
  "vm.exit",
  "process.spawn",
  "process.start",
  "process.signal",
  "process.exit",
]);

export const FIXED_LANES = ["containerd", "shim", "vm", "agent"] as const;

export interface Lane {
  id: string;
  label: string;
  kind: "containerd" | "shim" | "vm" | "agent" | "process";
}

export type ArrowStyle = "call" | "reply" | "event" | "process";

export interface Arrow {
  type: "arrow";
  /** Index of the record in Model.records. */
  i: number;
  t: number;
  from: string;
  to: string;
  label: string;
  style: ArrowStyle;
  error: boolean;
  violations: Violation[];
  /** The contract's ordering rules tested at this arrow (held unless in violations). */
  checked: RuleId[];
}

export interface Note {
  type: "note";
  i: number;
  t: number;
  text: string;
}

/** A process of the run coming up or going away, on its lane: the shim daemon, the agent. */
export interface Mark {
  type: "mark";
  i: number;
  t: number;
  lane: string;
  text: string;
}

export type Row = Arrow | Note | Mark;

export interface StateStep {
  status: ContainerStatus;
  op: ContainerOperation | "create";
  t: number;
}

export interface ProcessStates {
  proc: string;
  steps: StateStep[];
  illegal: { op: string; from: ContainerStatus; t: number }[];
}

/** A sandbox's life through the Sandbox API, replayed through the shim's own sandbox state table. */
export interface SandboxStates {
  sandbox: string;
  steps: { status: SandboxLife; op: string; t: number }[];
  illegal: { op: string; from: SandboxLife; t: number }[];
  /** Every Sandbox API call containerd made for it, in order, with its answer. */
  calls: { t: number; method: string; ok: boolean; code?: string }[];
}

export interface FileRow {
  t: number;
  op: string;
  path: string;
  type: string;
  during: string;
}

export interface Model {
  records: TraceRecord[];
  t0: number;
  lanes: Lane[];
  rows: Row[];
  arrows: Arrow[];
  events: TracedEvent[];
  violations: Violation[];
  states: ProcessStates[];
  sandboxes: SandboxStates[];
  files: FileRow[];
  roles: { role: string; pid: number }[];
}

/** Reads a trace: one .jsonl file, or a directory of them (one per process). */
export function readTrace(p: string): TraceRecord[] {
  const files = fs.statSync(p).isDirectory()
    ? fs
        .readdirSync(p)
        .filter((f) => f.endsWith(".jsonl"))
        .map((f) => path.join(p, f))
    : [p];
  const out: TraceRecord[] = [];
  for (const f of files) {
    const lines = fs.readFileSync(f, "utf8").split("\n");
    lines.forEach((line, n) => {
      if (!line.trim()) return;
      let r: TraceRecord;
      try {
        r = JSON.parse(line) as TraceRecord;
      } catch (e) {
        throw new Error(`${f}:${n + 1}: not a trace line: ${(e as Error).message}`);
      }
      if (typeof r.t !== "number" || typeof r.kind !== "string") throw new Error(`${f}:${n + 1}: a trace line needs a numeric t and a kind`);
      out.push(r);
    });
  }
  return sortRecords(out);
}

export function parseTrace(text: string): TraceRecord[] {
  return sortRecords(
    text
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as TraceRecord),
  );
}

/** Time order; within one process, file order is already time order, so the sort is stable. */
function sortRecords(rs: TraceRecord[]): TraceRecord[] {
  return rs.map((r, i) => ({ r, i })).sort((a, b) => a.r.t - b.r.t || a.i - b.i).map((x) => x.r);
}

export function laneOf(name: string): string {
  return (FIXED_LANES as readonly string[]).includes(name) ? name : `proc:${name}`;
}

const str = (v: unknown) => (v === undefined || v === null ? "" : String(v));

/** The few fields of a message that say what a call is about. */
export function brief(m: unknown): string {
  if (!m || typeof m !== "object") return "";
  const o = m as Record<string, unknown>;
  const parts: string[] = [];
  for (const k of ["id", "containerId", "execId", "signal", "pid", "exitStatus", "status", "sandboxId", "address"]) {
    if (o[k] !== undefined && o[k] !== "" && o[k] !== 0) parts.push(`${k}=${str(o[k])}`);
  }
  return parts.join(" ");
}

function arrowLabel(r: TraceRecord): string {
  switch (r.kind) {
    case "exec.call":
      return `exec shim ${str(r.action)} -id ${str(r.task)}`;
    case "exec.reply":
      return r.action === "start" ? `exit ${str(r.code)}: ${str(r.address) || "(no address)"}` : `exit ${str(r.code)}`;
    case "rpc.call": {
      const b = brief(r.req);
      return `${methodName(r)}(${b}) ·s${str(r.stream)}`;
    }
    case "rpc.reply":
      return r.ok ? `${methodName(r)} ✓ ${brief(r.res)}`.trimEnd() : `${methodName(r)} ✗ ${str(r.code)}: ${str(r.error)}`;
    case "event":
      return `${str(r.topic)} ${brief(r.event)}`.trimEnd();
    case "vm.start":
      return `start ${r.hypervisor === "none" ? "agent process (hypervisor none)" : `${str(r.hypervisor)} VM`}`;
    case "vm.started":
      return r.ok ? `up: pid ${str(r.vmPid)}, agent ${str(r.agent)}` : `failed: ${str(r.error)}`;
    case "vm.stop":
      return `stop pid ${str(r.vmPid)}`;
    case "vm.stopped":
      return r.ok ? "stopped" : `stop failed: ${str(r.error)}`;
    case "vm.exit":
      return `exited (code ${str(r.code)}, signal ${str(r.signal) || "none"})`;
    case "process.spawn": {
      const argv = Array.isArray(r.argv) ? (r.argv as string[]).join(" ") : "";
      return `${str(r.phase)} pid ${str(r.procPid)}${argv ? `: ${argv.length > 60 ? argv.slice(0, 60) + "…" : argv}` : ""}`;
    }
    case "process.start":
      return `start pid ${str(r.procPid)}`;
    case "process.signal":
      return `signal ${str(r.signal)}${r.all ? " (all)" : ""}`;
    case "process.exit":
      return `exit ${str(r.status)}`;
    default:
      return r.kind;
  }
}

/** Sandbox API calls say so ("Sandbox.Platform"): the Task API's names are the rest. */
function methodName(r: TraceRecord): string {
  return r.service === SANDBOX_SERVICE ? `Sandbox.${str(r.method)}` : str(r.method);
}

function took(r: TraceRecord, opened: Map<string, number>): string {
  if (!(r.kind.endsWith(".reply") || r.kind === "vm.started" || r.kind === "vm.stopped")) return "";
  const t = opened.get(str(r.id));
  return t === undefined ? "" : ` (${((r.t - t) / 1000).toFixed(1)} ms)`;
}

function arrowStyle(r: TraceRecord): ArrowStyle {
  if (r.kind === "event") return "event";
  if (r.kind.startsWith("process.")) return "process";
  if (r.kind.endsWith(".reply") || r.kind === "vm.started" || r.kind === "vm.stopped" || r.kind === "vm.exit") return "reply";
  return "call";
}

export function buildModel(records: TraceRecord[]): Model {
  const t0 = records.length ? records[0].t : 0;
  const procs: string[] = [];
  const seeProc = (name: string) => {
    if (!procs.includes(name)) procs.push(name);
  };
  for (const r of records) if (r.kind.startsWith("process.") && typeof r.proc === "string") seeProc(r.proc);
  const lanes: Lane[] = [
    { id: "containerd", label: "containerd", kind: "containerd" },
    { id: "shim", label: "shim", kind: "shim" },
    { id: "vm", label: "VM / agent process", kind: "vm" },
    { id: "agent", label: "kata agent API", kind: "agent" },
    ...procs.map((p) => ({ id: `proc:${p}`, label: p, kind: "process" as const })),
  ];

  // Events as containerd receives them, checked against the ordering rules.
  const calls = new Map<string, TraceRecord>();
  for (const r of records) if ((r.kind === "rpc.call" || r.kind === "exec.call") && typeof r.id === "string") calls.set(r.id, r);
  // Every call-like record, to show how long each answer took.
  const opened = new Map<string, number>();
  for (const r of records) if ((r.kind.endsWith(".call") || r.kind === "vm.start" || r.kind === "vm.stop") && typeof r.id === "string") opened.set(r.id, r.t);
  const events: TracedEvent[] = [];
  records.forEach((r, i) => {
    if (r.kind === "event") events.push({ i, t: r.t, topic: str(r.topic), event: (r.event ?? {}) as Record<string, unknown> });
  });
  const replies = records
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => r.kind === "rpc.reply" && r.from === "shim" && r.to === "containerd" && r.ok)
    .map(({ r, i }) => ({ i, t: r.t, method: str(r.method), req: (calls.get(str(r.id))?.req ?? {}) as Record<string, unknown> }));
  const violations = checkOrdering(events, replies);
  const byRecord = new Map<number, Violation[]>();
  for (const v of violations) byRecord.set(v.i, [...(byRecord.get(v.i) ?? []), v]);

  const rows: Row[] = [];
  const arrows: Arrow[] = [];
  records.forEach((r, i) => {
    if (ARROW_KINDS.has(r.kind)) {
      const a: Arrow = {
        type: "arrow",
        i,
        t: r.t,
        from: laneOf(str(r.from)),
        to: laneOf(str(r.to)),
        label: arrowLabel(r) + took(r, opened),
        style: arrowStyle(r),
        error: r.ok === false || (r.kind === "exec.reply" && r.code !== 0),
        violations: byRecord.get(i) ?? [],
        checked: r.kind === "event" ? rulesCheckedAt(str(r.topic)) : r.kind === "rpc.reply" && r.from === "shim" && r.to === "containerd" && r.ok ? rulesCheckedAtReply(str(r.method)) : [],
      };
      rows.push(a);
      arrows.push(a);
    } else if (r.kind === "note") rows.push({ type: "note", i, t: r.t, text: str(r.text) });
    else if (r.kind === "proc.start" || r.kind === "proc.exit") {
      const agent = r.role === "agent";
      const who = agent ? "agent process" : `shim ${str(r.action)}`;
      const text = r.kind === "proc.start" ? `${who} pid ${r.pid} up` : `${who} pid ${r.pid} exits (code ${str(r.code)})`;
      rows.push({ type: "mark", i, t: r.t, lane: agent ? "vm" : "shim", text });
    }
  });

  return { records, t0, lanes, rows, arrows, events, violations, states: buildStates(records, calls), sandboxes: buildSandboxes(records, calls), files: buildFiles(records), roles: rolesOf(records) };
}

/**
 * The moves of the sandbox state table a successful answer stands for. Only
 * containerd's own moves: a WaitSandbox answer can come before the StopSandbox
 * answer whose stop it reports, so it moves nothing (it is listed among the calls).
 */
function sandboxMoves(method: string, state: SandboxLife): SandboxOp[] {
  switch (method) {
    case "StartSandbox":
      return ["start", "started"];
    case "StopSandbox":
      return state === "created" ? ["stop"] : ["stop", "stopped"];
    case "ShutdownSandbox":
      // shimlab stops a ready sandbox itself before shutting it down.
      return state === "ready" ? ["stop", "stopped", "shutdown"] : ["shutdown"];
    default:
      return [];
  }
}

/**
 * Each sandbox's life as containerd drove it through the Sandbox API (a stop of
 * a stopped sandbox answers NotFound: not a move), and every call in order, a
 * refused one with its code.
 */
function buildSandboxes(records: TraceRecord[], calls: Map<string, TraceRecord>): SandboxStates[] {
  const all = new Map<string, { sm: SandboxStateMachine; st: SandboxStates }>();
  for (const r of records) {
    if (r.kind !== "rpc.reply" || r.from !== "shim" || r.to !== "containerd") continue;
    const call = calls.get(str(r.id));
    if (call?.service !== SANDBOX_SERVICE) continue;
    const id = str(((call.req ?? {}) as Record<string, unknown>).sandboxId);
    const method = str(r.method);
    let m = all.get(id);
    if (!m && method === "CreateSandbox" && r.ok) {
      m = { sm: new SandboxStateMachine(id), st: { sandbox: id, steps: [{ status: "created", op: "create", t: r.t }], illegal: [], calls: [] } };
      all.set(id, m);
    }
    if (!m) continue;
    m.st.calls.push({ t: r.t, method, ok: r.ok === true, ...(r.ok ? {} : { code: str(r.code) }) });
    if (!r.ok) continue;
    for (const op of sandboxMoves(method, m.sm.state)) {
      const from = m.sm.state;
      try {
        const to = m.sm.transition(op);
        if (to !== from) m.st.steps.push({ status: to, op, t: r.t });
      } catch {
        // One illegal move per answer: the rest of its moves follow from it.
        m.st.illegal.push({ op, from, t: r.t });
        break;
      }
    }
  }
  return [...all.values()].map((x) => x.st);
}

function rolesOf(records: TraceRecord[]): { role: string; pid: number }[] {
  const seen = new Map<string, { role: string; pid: number }>();
  for (const r of records) seen.set(`${r.role}:${r.pid}`, { role: r.role, pid: r.pid });
  return [...seen.values()];
}

/**
 * Each process's life as containerd sees it, replayed through the shim's own state machines: a
 * container's (its init's life, and pause and resume) for the task, the process one for an exec.
 */
function buildStates(records: TraceRecord[], calls: Map<string, TraceRecord>): ProcessStates[] {
  // An exec is never paused or resumed (those name the container), so ops outside its table stay illegal moves.
  type Replayed = { readonly status: ContainerStatus; transition(op: ContainerOperation): ContainerStatus };
  const machines = new Map<string, { sm: Replayed; st: ProcessStates }>();
  const get = (proc: string, t: number, create: boolean, exec = false) => {
    let m = machines.get(proc);
    if (!m && create) {
      const sm: Replayed = exec ? (new StateMachine(proc) as unknown as Replayed) : new ContainerStateMachine(proc);
      m = { sm, st: { proc, steps: [{ status: "created", op: "create", t }], illegal: [] } };
      machines.set(proc, m);
    }
    return m;
  };
  const move = (proc: string, op: ContainerOperation, t: number) => {
    const m = get(proc, t, false);
    if (!m) return;
    const from = m.sm.status;
    try {
      const to = m.sm.transition(op);
      if (to !== from) m.st.steps.push({ status: to, op, t });
    } catch {
      m.st.illegal.push({ op, from, t });
    }
  };
  for (const r of records) {
    if (r.kind === "rpc.reply" && r.from === "shim" && r.to === "containerd" && r.ok) {
      const req = (calls.get(str(r.id))?.req ?? {}) as Record<string, unknown>;
      const id = str(req.id);
      const exec = str(req.execId);
      const proc = exec ? `${id}/${exec}` : id;
      switch (r.method) {
        case "Create":
          get(id, r.t, true);
          break;
        case "Exec":
          get(`${id}/${exec}`, r.t, true, true);
          break;
        case "Start":
          move(proc, "start", r.t);
          break;
        case "Pause":
          move(id, "pause", r.t);
          break;
        case "Resume":
          move(id, "resume", r.t);
          break;
        case "Delete":
          move(proc, "delete", r.t);
          break;
      }
    } else if (r.kind === "event" && r.topic === "/tasks/exit") {
      const e = (r.event ?? {}) as Record<string, unknown>;
      const cid = str(e.containerId);
      const id = str(e.id);
      move(!id || id === cid ? cid : `${cid}/${id}`, "exit", r.t);
    }
  }
  return [...machines.values()].map((m) => m.st);
}

/**
 * An atomic write's temporary (`.address`, `.vm.json`, runc's state-NNN): made,
 * then renamed into place within this long, the new name appearing beside it at once.
 */
const TRANSIENT_US = 200_000;
const RENAME_US = 5_000;

function buildFiles(records: TraceRecord[]): FileRow[] {
  const out: FileRow[] = [];
  let during = "";
  const createdAt = new Map<string, number>();
  const fileRecs = records.filter((r) => r.kind === "file");
  const transient = new Set<string>();
  for (const r of fileRecs) {
    const key = str(r.path);
    if (r.op === "created") createdAt.set(key, r.t);
    else if (r.op === "removed" && r.type !== "dir" && createdAt.has(key) && r.t - createdAt.get(key)! < TRANSIENT_US) {
      const dir = path.dirname(key);
      const renamed = fileRecs.some((q) => q.op === "created" && q.path !== key && path.dirname(str(q.path)) === dir && Math.abs(q.t - r.t) < RENAME_US);
      if (renamed) transient.add(key);
    }
  }
  // Several observers (containerd's watcher, the shim) may tell of one file: keep each change once.
  const lastOp = new Map<string, string>();
  const repeated = new Set<TraceRecord>();
  for (const r of records) {
    if (r.kind !== "file" || r.op === "existing") continue;
    const key = str(r.path);
    if (lastOp.get(key) === r.op) repeated.add(r);
    lastOp.set(key, str(r.op));
  }
  for (const r of records) {
    if (repeated.has(r)) continue;
    if ((r.kind === "rpc.call" && r.from === "containerd") || r.kind === "exec.call") during = arrowLabel(r).replace(/ ·s\d+$/, "");
    else if (r.kind === "note") during = str(r.text);
    if (r.kind === "file" && r.op !== "existing" && !transient.has(str(r.path))) out.push({ t: r.t, op: str(r.op), path: str(r.path), type: str(r.type), during });
  }
  return out;
}
