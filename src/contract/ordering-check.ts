// The contract's ordering rules (docs/contract/events.md, kind "ordering"),
// checked over events in the order they left the shim (traces) or reached
// containerd (scenarios). Each violation names its rule, so a trace page or a
// verdict can link to what the rule protects.
import { ORDERING_RULES, rule, type RuleId } from "./rules";

export interface TracedEvent {
  /** Index of the record in the trace. */
  i: number;
  t: number;
  topic: string;
  event: Record<string, unknown>;
}

export interface OkReply {
  i: number;
  t: number;
  method: string;
  req: Record<string, unknown>;
}

export interface Violation {
  rule: RuleId;
  level: "MUST" | "SHOULD";
  /** The record (event or reply) where it shows. */
  i: number;
  message: string;
}

const s = (v: unknown) => (v === undefined || v === null ? "" : String(v));

export function checkOrdering(events: TracedEvent[], okReplies: OkReply[] = []): Violation[] {
  const out: Violation[] = [];
  const seen = new Set<string>();
  const had = (k: string) => seen.has(k);
  const flag = (id: RuleId, i: number, message: string) => {
    out.push({ rule: id, level: rule(id).level, i, message });
  };
  /** Execs started and not yet exited, per container. */
  const running = new Map<string, Set<string>>();
  for (const e of events) {
    const cid = s(e.event.containerId);
    switch (e.topic) {
      case "/tasks/create":
        if (had(`create:${cid}`)) flag("events.once", e.i, `TaskCreate for ${cid} published twice`);
        break;
      case "/tasks/start":
        if (!had(`create:${cid}`)) flag("events.start-after-create", e.i, `TaskStart for ${cid} before its TaskCreate`);
        if (had(`start:${cid}`)) flag("events.once", e.i, `TaskStart for ${cid} published twice`);
        break;
      case "/tasks/exit": {
        const id = s(e.event.id);
        const isInit = !id || id === cid;
        if (isInit) {
          if (!had(`start:${cid}`)) flag("events.exit-after-start", e.i, `TaskExit for ${cid} without a TaskStart before it`);
          if (had(`exit:${cid}`)) flag("events.once", e.i, `TaskExit for ${cid} published twice`);
          const left = running.get(cid);
          if (left?.size) flag("events.init-exit-after-exec-exits", e.i, `TaskExit for ${cid}'s init while exec ${[...left].join(", ")} has not exited`);
        } else {
          if (!had(`exec-started:${cid}/${id}`)) flag("events.exec-exit-after-started", e.i, `TaskExit for exec ${cid}/${id} without a TaskExecStarted before it`);
          if (had(`exit:${cid}/${id}`)) flag("events.once", e.i, `TaskExit for exec ${cid}/${id} published twice`);
          running.get(cid)?.delete(id);
        }
        seen.add(isInit ? `exit:${cid}` : `exit:${cid}/${id}`);
        continue;
      }
      case "/tasks/delete": {
        const id = s(e.event.id);
        if (!id || id === cid) {
          if (had(`start:${cid}`) ? !had(`exit:${cid}`) : !had(`create:${cid}`))
            flag("events.delete-after-exit", e.i, had(`start:${cid}`) ? `TaskDelete for ${cid} before its TaskExit` : `TaskDelete for ${cid} before its TaskCreate`);
          if (had(`delete:${cid}`)) flag("events.once", e.i, `TaskDelete for ${cid} published twice`);
          seen.add(`delete:${cid}`);
          continue;
        }
        break;
      }
      case "/tasks/exec-added": {
        const x = s(e.event.execId);
        if (!had(`create:${cid}`)) flag("events.exec-added-after-create", e.i, `TaskExecAdded for ${cid}/${x} before TaskCreate of ${cid}`);
        seen.add(`exec-added:${cid}/${x}`);
        continue;
      }
      case "/tasks/exec-started": {
        const x = s(e.event.execId);
        if (!had(`exec-added:${cid}/${x}`)) flag("events.exec-started-after-added", e.i, `TaskExecStarted for ${cid}/${x} before its TaskExecAdded`);
        if (had(`exec-started:${cid}/${x}`)) flag("events.once", e.i, `TaskExecStarted for ${cid}/${x} published twice`);
        if (had(`exit:${cid}`)) flag("events.no-exec-start-after-init-exit", e.i, `TaskExecStarted for ${cid}/${x} after ${cid}'s init exited`);
        seen.add(`exec-started:${cid}/${x}`);
        if (!running.has(cid)) running.set(cid, new Set());
        running.get(cid)!.add(x);
        continue;
      }
      case "/tasks/oom":
        if (had(`exit:${cid}`)) flag("events.oom-before-exit", e.i, `TaskOOM for ${cid} after its TaskExit`);
        break;
    }
    const key = e.topic.slice("/tasks/".length);
    seen.add(`${key}:${cid}`);
  }

  // Calls that must have published their event by the time they answer.
  for (const r of okReplies) {
    const id = s(r.req.id);
    const x = s(r.req.execId);
    let want: ((e: TracedEvent) => boolean) | null = null;
    let what = "";
    if (r.method === "Create") {
      want = (e) => e.topic === "/tasks/create" && s(e.event.containerId) === id;
      what = "TaskCreate";
    } else if (r.method === "Start" && !x) {
      want = (e) => e.topic === "/tasks/start" && s(e.event.containerId) === id;
      what = "TaskStart";
    } else if (r.method === "Start") {
      want = (e) => e.topic === "/tasks/exec-started" && s(e.event.containerId) === id && s(e.event.execId) === x;
      what = "TaskExecStarted";
    } else if (r.method === "Exec") {
      want = (e) => e.topic === "/tasks/exec-added" && s(e.event.containerId) === id && s(e.event.execId) === x;
      what = "TaskExecAdded";
    }
    if (want && !events.some((e) => e.t <= r.t && want!(e))) flag("events.event-before-reply", r.i, `${r.method}(${id}${x ? "/" + x : ""}) returned before publishing ${what}`);
  }
  return out.sort((a, b) => a.i - b.i);
}

/** The ordering rules tested at an event of this topic (what a trace page links the event to). */
export function rulesCheckedAt(topic: string): RuleId[] {
  return ORDERING_RULES.filter((r) => r.id !== "events.event-before-reply" && r.topics?.includes(topic)).map((r) => r.id);
}

/** The ordering rules tested at a shim's reply to containerd: only the reply-after-event rule, for the calls that publish. */
export function rulesCheckedAtReply(method: string): RuleId[] {
  return method === "Create" || method === "Start" || method === "Exec" ? ["events.event-before-reply"] : [];
}
