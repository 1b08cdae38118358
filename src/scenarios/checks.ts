// The checker: a verdict from the history, the events containerd received and
// what was left behind. Each check holds the shim to rules of shimlab's
// contract (docs/contract/) and says exactly where it failed, citing the rule.
import type { RecordedEvent } from "../harness/events-server";
import { checkOrdering } from "../contract/ordering-check";
import { ORDERING_RULES, type RuleId } from "../contract/rules";
import { ruleDoc } from "../contract/cite";
import type { History } from "./history";
import type { CHECK_NAMES } from "./format";
import type { CheckResult, HistoryOp, RuleRef, Scenario, Step } from "./types";

/** The contract rules behind each check; expectations cite what their steps name, events are the scenario's own. */
export const CHECK_RULES: Record<(typeof CHECK_NAMES)[number], readonly RuleId[]> = {
  expectations: [],
  answered: ["wire.every-call-answered"],
  "event-order": ORDERING_RULES.filter((r) => r.id !== "events.event-before-reply").map((r) => r.id),
  "exit-once": ["events.once", "events.exit-published"],
  "exit-consistent": ["exit.consistent"],
  "wait-then-stopped": ["state.stopped-after-wait"],
  events: [],
  "no-leaks": ["binary.delete-cleans-up", "shutdown.exits-when-empty"],
};

export interface CheckInput {
  scenario: Scenario;
  history: History;
  events: (RecordedEvent & { time: number })[];
  expectationProblems: string[];
  /** The rules named by the steps that missed their expectation. */
  expectationRules?: string[];
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

/**
 * The contract's orderings over the events as containerd received them, with
 * the same checker traces use. Each problem starts with its rule id; rules the
 * scenario skips by id are left out. (Whether Create, Start and Exec published
 * before answering is only seen on a trace: the reply's arrival here says
 * nothing of when the shim sent it.)
 */
function eventOrder(events: Ev[], skipped: (id: string) => boolean): { problems: string[]; broken: RuleId[] } {
  const vs = checkOrdering(events.map((e) => ({ i: e.seq, t: e.time, topic: e.topic, event: e.event }))).filter((v) => !skipped(v.rule));
  return { problems: vs.map((v) => `${v.rule}: ${v.message} (event #${v.i})`), broken: [...new Set(vs.map((v) => v.rule))] };
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

/** Every rule the scenario's steps name in their expectations. */
function stepRules(steps: Step[]): string[] {
  return steps.flatMap((st) => (st.kind === "parallel" ? st.branches.flatMap(stepRules) : st.expect?.rule ? [st.expect.rule] : []));
}

const refs = (ids: readonly string[], broken: readonly string[] = []): RuleRef[] =>
  [...new Set(ids)].map((id) => ({ rule: id, ruleDoc: ruleDoc(id), ...(broken.includes(id) ? { broken: true as const } : {}) }));

export function runChecks(i: CheckInput): CheckResult[] {
  const s = i.scenario;
  const skip = s.expect.skip_checks ?? {};
  const bound = s.expect.call_bound_ms ?? DEFAULT_CALL_BOUND_MS;
  const order = eventOrder(i.events, (id) => !!skip[id]);
  const named = stepRules(s.steps);
  const results: [(typeof CHECK_NAMES)[number], () => string[], readonly string[]][] = [
    ["expectations", () => [...(i.crash ? [i.crash] : []), ...i.expectationProblems], named],
    ["answered", () => answered(i.history, bound), CHECK_RULES.answered],
    ["event-order", () => order.problems, CHECK_RULES["event-order"].filter((id) => !skip[id])],
    ["exit-once", () => exitOnce(i.history, i.events), CHECK_RULES["exit-once"]],
    ["exit-consistent", () => exitConsistent(i.history, i.events), CHECK_RULES["exit-consistent"]],
    ["wait-then-stopped", () => waitThenStopped(i.history), CHECK_RULES["wait-then-stopped"]],
    ["events", () => expectedEvents(s, i.events), CHECK_RULES.events],
    ["no-leaks", () => (s.expect.no_leaks === false ? [] : i.leaks), CHECK_RULES["no-leaks"]],
  ];
  return results.map(([name, f, rules]) => {
    if (skip[name]) return { name, ok: true, skipped: skip[name], problems: [], rules: refs(rules) };
    const problems = f();
    if (!problems.length) return { name, ok: true, problems, rules: refs(rules) };
    // Which rules this failure broke: event-order knows per violation, expectations per step; the others break all they stand for.
    const broken = name === "event-order" ? order.broken : name === "expectations" ? (i.expectationRules ?? []) : rules;
    return { name, ok: false, problems, rules: refs(rules, broken) };
  });
}
