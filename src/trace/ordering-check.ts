// The runtime v2 event ordering rules (containerd's runtime/v2 README, "Events"),
// checked over the events in the order they left the shim. Each rule names what
// it protects: a subscriber that sees TaskExit before TaskStart, say, would
// never learn the process ran.
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

export interface Rule {
  id: string;
  level: "MUST" | "SHOULD";
  text: string;
}

export const RULES: Rule[] = [
  { id: "start-after-create", level: "MUST", text: "TaskStart follows TaskCreate" },
  { id: "exit-after-start", level: "MUST", text: "the init's TaskExit follows TaskStart" },
  { id: "delete-after-exit", level: "MUST", text: "TaskDelete follows TaskExit (or TaskCreate when the task never started)" },
  { id: "exec-added-after-create", level: "MUST", text: "TaskExecAdded follows TaskCreate" },
  { id: "exec-started-after-added", level: "MUST", text: "TaskExecStarted follows TaskExecAdded" },
  { id: "exec-exit-after-started", level: "MUST", text: "an exec's TaskExit follows its TaskExecStarted" },
  { id: "init-exit-after-exec-exits", level: "MUST", text: "the init's TaskExit follows the TaskExit of every exec that started (containerd 2.x waits for them)" },
  { id: "oom-before-exit", level: "MUST", text: "TaskOOM comes before the container's TaskExit, never after" },
  { id: "once", level: "MUST", text: "each lifecycle event is published once per process" },
  { id: "event-before-reply", level: "SHOULD", text: "Create, Start and Exec publish their event before they return (runc's shim holds a lock to ensure it)" },
];

export interface Violation {
  rule: string;
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
  const flag = (rule: string, i: number, message: string) => {
    const r = RULES.find((x) => x.id === rule)!;
    out.push({ rule, level: r.level, i, message });
  };
  /** Execs started and not yet exited, per container. */
  const running = new Map<string, Set<string>>();
  for (const e of events) {
    const cid = s(e.event.containerId);
    switch (e.topic) {
      case "/tasks/create":
        if (had(`create:${cid}`)) flag("once", e.i, `TaskCreate for ${cid} published twice`);
        break;
      case "/tasks/start":
        if (!had(`create:${cid}`)) flag("start-after-create", e.i, `TaskStart for ${cid} before its TaskCreate`);
        if (had(`start:${cid}`)) flag("once", e.i, `TaskStart for ${cid} published twice`);
        break;
      case "/tasks/exit": {
        const id = s(e.event.id);
        const isInit = !id || id === cid;
        if (isInit) {
          if (!had(`start:${cid}`)) flag("exit-after-start", e.i, `TaskExit for ${cid} without a TaskStart before it`);
          if (had(`exit:${cid}`)) flag("once", e.i, `TaskExit for ${cid} published twice`);
          const left = running.get(cid);
          if (left?.size) flag("init-exit-after-exec-exits", e.i, `TaskExit for ${cid}'s init while exec ${[...left].join(", ")} has not exited`);
        } else {
          if (!had(`exec-started:${cid}/${id}`)) flag("exec-exit-after-started", e.i, `TaskExit for exec ${cid}/${id} without a TaskExecStarted before it`);
          if (had(`exit:${cid}/${id}`)) flag("once", e.i, `TaskExit for exec ${cid}/${id} published twice`);
          running.get(cid)?.delete(id);
        }
        seen.add(isInit ? `exit:${cid}` : `exit:${cid}/${id}`);
        continue;
      }
      case "/tasks/delete": {
        const id = s(e.event.id);
        if (!id || id === cid) {
          if (had(`start:${cid}`) ? !had(`exit:${cid}`) : !had(`create:${cid}`))
            flag("delete-after-exit", e.i, had(`start:${cid}`) ? `TaskDelete for ${cid} before its TaskExit` : `TaskDelete for ${cid} before its TaskCreate`);
          if (had(`delete:${cid}`)) flag("once", e.i, `TaskDelete for ${cid} published twice`);
          seen.add(`delete:${cid}`);
          continue;
        }
        break;
      }
      case "/tasks/exec-added": {
        const x = s(e.event.execId);
        if (!had(`create:${cid}`)) flag("exec-added-after-create", e.i, `TaskExecAdded for ${cid}/${x} before TaskCreate of ${cid}`);
        seen.add(`exec-added:${cid}/${x}`);
        continue;
      }
      case "/tasks/exec-started": {
        const x = s(e.event.execId);
        if (!had(`exec-added:${cid}/${x}`)) flag("exec-started-after-added", e.i, `TaskExecStarted for ${cid}/${x} before its TaskExecAdded`);
        if (had(`exec-started:${cid}/${x}`)) flag("once", e.i, `TaskExecStarted for ${cid}/${x} published twice`);
        seen.add(`exec-started:${cid}/${x}`);
        if (!running.has(cid)) running.set(cid, new Set());
        running.get(cid)!.add(x);
        continue;
      }
      case "/tasks/oom":
        if (had(`exit:${cid}`)) flag("oom-before-exit", e.i, `TaskOOM for ${cid} after its TaskExit`);
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
    if (want && !events.some((e) => e.t <= r.t && want!(e))) flag("event-before-reply", r.i, `${r.method}(${id}${x ? "/" + x : ""}) returned before publishing ${what}`);
  }
  return out.sort((a, b) => a.i - b.i);
}
