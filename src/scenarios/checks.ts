// The checker: a verdict from the history, the events containerd received and
// what was left behind. Each check is one invariant of the runtime v2
// contract (or of a bug that broke it) and says exactly where it failed.
import type { RecordedEvent } from "../harness/events-server";
import type { History } from "./history";
import type { CheckResult, HistoryOp, Scenario } from "./types";

export interface CheckInput {
  scenario: Scenario;
  history: History;
  events: (RecordedEvent & { time: number })[];
  expectationProblems: string[];
  aborted: string | null;
  leaks: string[];
  crash: string | null;
}

const DEFAULT_CALL_BOUND_MS = 15_000;

type Ev = RecordedEvent & { time: number };

/** The process an event is about: "<container>" for init, "<container>/<exec>" for an exec. */
function procOf(e: Ev): string | null {
  const cid = e.event.containerId as string | undefined;
  if (!cid) return null;
  switch (e.topic) {
    case "/tasks/exit":
      return e.event.id && e.event.id !== cid ? `${cid}/${e.event.id}` : cid;
    case "/tasks/exec-added":
    case "/tasks/exec-started":
      return `${cid}/${e.event.execId}`;
    default:
      return cid;
  }
}

const procOfOp = (o: HistoryOp) => (o.exec_id ? `${o.container}/${o.exec_id}` : (o.container ?? ""));

/** Every call answered (ok or error) or given up on by the client, within the bound; none left pending. */
function answered(h: History, bound: number): string[] {
  const out: string[] = [];
  for (const { inv, done } of h.pairs()) {
    if (inv.process === "nemesis") continue;
    const what = `#${inv.index} ${inv.f} ${procOfOp(inv)}`.trim();
    if (!done) out.push(`${what} (invoked at ${inv.time} ms) never completed`);
    else if (done.time - inv.time > bound) out.push(`${what} took ${(done.time - inv.time).toFixed(0)} ms, over the ${bound} ms bound`);
  }
  return out;
}

/** runtime v2's MUST orderings, per container and process. */
function eventOrder(events: Ev[]): string[] {
  const out: string[] = [];
  const byContainer = new Map<string, Ev[]>();
  for (const e of events) {
    const cid = e.event.containerId as string | undefined;
    if (!cid) continue;
    byContainer.set(cid, [...(byContainer.get(cid) ?? []), e]);
  }
  for (const [cid, evs] of byContainer) {
    const first = (topic: string, proc = cid) => evs.find((e) => e.topic === topic && procOf(e) === proc);
    const count = (topic: string, proc = cid) => evs.filter((e) => e.topic === topic && procOf(e) === proc).length;
    const seq = (e?: Ev) => (e ? e.seq : -1);
    const create = first("/tasks/create");
    const start = first("/tasks/start");
    const initExit = first("/tasks/exit");
    const del = first("/tasks/delete");
    for (const t of ["/tasks/create", "/tasks/start", "/tasks/delete"]) if (count(t) > 1) out.push(`${cid}: ${count(t)} ${t} events (at most one)`);
    const before = (a: Ev | undefined, b: Ev | undefined, rule: string) => {
      if (a && b && seq(a) > seq(b)) out.push(`${cid}: ${rule} (got ${b.topic} #${b.seq} before ${a.topic} #${a.seq})`);
      if (!a && b) out.push(`${cid}: ${rule} (${b.topic} #${b.seq} with no ${rule.split(" ")[0]} at all)`);
    };
    if (start) before(create, start, "/tasks/create before /tasks/start");
    if (initExit && start) before(start, initExit, "/tasks/start before the init's /tasks/exit");
    if (initExit && !start) out.push(`${cid}: init /tasks/exit #${initExit.seq} but no /tasks/start (an exit is never published before its start)`);
    if (del) {
      before(create, del, "/tasks/create before /tasks/delete");
      if (start) before(initExit, del, "/tasks/exit before /tasks/delete");
    }
    const oom = evs.find((e) => e.topic === "/tasks/oom");
    if (oom && initExit && oom.seq > initExit.seq) out.push(`${cid}: /tasks/oom #${oom.seq} after the init's /tasks/exit #${initExit.seq} (OOM must come first)`);
    const execs = new Set(evs.filter((e) => e.event.execId).map((e) => e.event.execId as string));
    for (const x of execs) {
      const p = `${cid}/${x}`;
      const added = first("/tasks/exec-added", p);
      const started = first("/tasks/exec-started", p);
      const exit = first("/tasks/exit", p);
      if (started) before(added, started, `/tasks/exec-added before /tasks/exec-started of ${x}`);
      if (exit) before(started, exit, `/tasks/exec-started before the /tasks/exit of ${x}`);
      if (exit && initExit && exit.seq > initExit.seq) out.push(`${cid}: exec ${x}'s /tasks/exit #${exit.seq} after the init's /tasks/exit #${initExit.seq} (containerd#9719: the init exit must wait for every exec exit)`);
      if (started && initExit && started.seq > initExit.seq) out.push(`${cid}: exec ${x} started (#${started.seq}) after the init exited (#${initExit.seq})`);
      // containerd needs every started exec's exit: one that never comes leaves `exec` clients hanging.
      if (started && initExit && !exit) out.push(`${cid}: exec ${x} started (#${started.seq}) but its /tasks/exit never reached containerd, though the init's did (#${initExit.seq})`);
    }
  }
  return out;
}

/** Each exit reaches containerd exactly once, and every process a Wait saw exit has one. */
function exitOnce(h: History, events: Ev[]): string[] {
  const out: string[] = [];
  const exits = new Map<string, number>();
  for (const e of events) if (e.topic === "/tasks/exit") exits.set(procOf(e)!, (exits.get(procOf(e)!) ?? 0) + 1);
  for (const [p, n] of exits) if (n > 1) out.push(`${p}: ${n} /tasks/exit events (a duplicate exit)`);
  const waited = new Set<string>();
  for (const o of h.ops) if (o.f === "wait" && o.type === "ok") waited.add(procOfOp(o));
  for (const p of waited) if (!exits.has(p)) out.push(`${p}: Wait returned an exit status but no /tasks/exit ever reached containerd (a lost exit event)`);
  return out;
}

/** No lost exit code: Wait, State, Delete and the events agree on each process's exit status. */
function exitConsistent(h: History, events: Ev[]): string[] {
  const seen = new Map<string, { status: number; where: string }[]>();
  const add = (p: string, status: unknown, where: string) => {
    if (typeof status !== "number") return;
    seen.set(p, [...(seen.get(p) ?? []), { status, where }]);
  };
  for (const o of h.ops) {
    if (o.type !== "ok" || !o.container) continue;
    const v = o.value as Record<string, unknown>;
    if (o.f === "wait") add(procOfOp(o), v.exitStatus, `Wait #${o.index}`);
    if (o.f === "state" && v.status === "STOPPED") add(procOfOp(o), v.exitStatus, `State #${o.index}`);
  }
  const exited = new Set<string>();
  for (const e of events) {
    if (e.topic === "/tasks/exit") {
      exited.add(procOf(e)!);
      add(procOf(e)!, e.event.exitStatus ?? 0, `/tasks/exit #${e.seq}`);
    }
  }
  // Delete's status only means something for a process that exited.
  for (const o of h.ops) if (o.type === "ok" && o.f === "delete" && exited.has(procOfOp(o))) add(procOfOp(o), (o.value as Record<string, unknown>).exitStatus, `Delete #${o.index}`);
  for (const e of events) if (e.topic === "/tasks/delete" && exited.has(procOf(e)!)) add(procOf(e)!, e.event.exitStatus ?? 0, `/tasks/delete #${e.seq}`);
  const out: string[] = [];
  for (const [p, l] of seen) {
    const distinct = new Set(l.map((x) => x.status));
    if (distinct.size > 1) out.push(`${p}: exit status disagrees: ${l.map((x) => `${x.where}=${x.status}`).join(", ")}`);
  }
  return out;
}

/** kata runtime#1600: once Wait has returned, State must say STOPPED. */
function waitThenStopped(h: History): string[] {
  const out: string[] = [];
  const waitedAt = new Map<string, number>();
  for (const o of h.ops) {
    if (o.f === "wait" && o.type === "ok") {
      const p = procOfOp(o);
      if (!waitedAt.has(p)) waitedAt.set(p, o.index);
    }
  }
  for (const { inv, done } of h.pairs()) {
    if (inv.f !== "state" || done?.type !== "ok") continue;
    const p = procOfOp(inv);
    const w = waitedAt.get(p);
    if (w !== undefined && w < inv.index) {
      const st = (done.value as Record<string, unknown>).status;
      if (st !== "STOPPED") out.push(`${p}: State #${done.index} says ${st} after Wait #${w} had returned`);
    }
  }
  return out;
}

/** The scenario's own event expectations: topics in order, and topics that must not come. */
function expectedEvents(s: Scenario, events: Ev[]): string[] {
  const out: string[] = [];
  for (const [cid, want] of Object.entries(s.expect.events ?? {})) {
    const got = events.filter((e) => e.event.containerId === cid).map((e) => e.topic);
    let i = 0;
    for (const t of got) if (i < want.length && t === want[i]) i++;
    if (i < want.length) out.push(`${cid}: expected events ${want.join(" → ")} in that order; missing ${want[i]} (got ${got.join(", ") || "nothing"})`);
  }
  for (const [cid, never] of Object.entries(s.expect.no_events ?? {})) {
    for (const e of events) if (e.event.containerId === cid && never.includes(e.topic)) out.push(`${cid}: ${e.topic} (#${e.seq}) must not be published here`);
  }
  return out;
}

export function runChecks(i: CheckInput): CheckResult[] {
  const s = i.scenario;
  const skip = s.expect.skip_checks ?? {};
  const bound = s.expect.call_bound_ms ?? DEFAULT_CALL_BOUND_MS;
  const results: [string, () => string[]][] = [
    ["expectations", () => [...(i.crash ? [i.crash] : []), ...i.expectationProblems]],
    ["answered", () => answered(i.history, bound)],
    ["event-order", () => eventOrder(i.events)],
    ["exit-once", () => exitOnce(i.history, i.events)],
    ["exit-consistent", () => exitConsistent(i.history, i.events)],
    ["wait-then-stopped", () => waitThenStopped(i.history)],
    ["events", () => expectedEvents(s, i.events)],
    ["no-leaks", () => (s.expect.no_leaks === false ? [] : i.leaks)],
  ];
  return results.map(([name, f]) => {
    if (skip[name]) return { name, ok: true, skipped: skip[name], problems: [] };
    const problems = f();
    return { name, ok: problems.length === 0, problems };
  });
}
