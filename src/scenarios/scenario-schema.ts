// The schema of scenarios/*.yaml. Steps are chosen by `do`, faults by `scope`:
// each gets exactly the keys that mean something for it.
import { TOXIC_TYPES } from "../faults/toxics";
import { isObject, nearest, type Schema } from "./schema";
import { ORDERING_RULES, RULES, isRuleId } from "../contract/rules";

const str: Schema = { type: "string" };
const ID = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const id: Schema = { type: "string", pattern: ID, patternText: "an identifier (letters, digits, '.', '_', '-')" };
const posInt: Schema = { type: "integer", min: 1 };
const nonNeg: Schema = { type: "integer", min: 0 };
const strList: Schema = { type: "array", items: str };
const topic: Schema = { type: "string", pattern: /^\/tasks\/[a-z-]+$/, patternText: "a task event topic such as /tasks/exit" };

export const TASK_METHODS = ["State", "Create", "Start", "Delete", "Pids", "Pause", "Resume", "Checkpoint", "Kill", "Exec", "ResizePty", "CloseIO", "Update", "Wait", "Stats", "Connect", "Shutdown"] as const;

export const CODE_NAMES = ["OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"] as const;

const expect: Schema = {
  type: "object",
  properties: {
    outcome: { type: "string", enum: ["ok", "fail", "info", "error", "any", "answered"] },
    error: { type: "oneOf", alternatives: [{ type: "string", enum: CODE_NAMES }, { type: "array", items: { type: "string", enum: CODE_NAMES }, minItems: 1 }], text: "an error code name (NotFound, Unavailable…) or a list of them" },
    message: str,
    within_ms: posInt,
    exit_status: nonNeg,
    status: { type: "string", enum: ["CREATED", "RUNNING", "STOPPED", "PAUSED", "UNKNOWN", "READY", "NOTREADY"] },
    output: str,
    fields: { type: "map", values: { type: "oneOf", alternatives: [str, { type: "integer" }, { type: "boolean" }], text: "a string, integer or boolean" } },
    rule: {
      type: "switch",
      pick: (v) => {
        if (typeof v === "string" && isRuleId(v)) return str;
        const near = typeof v === "string" ? nearest(v, RULES.map((r) => r.id)) : null;
        return `expected a contract rule id (see docs/contract/README.md)${near ? `, did you mean "${near}"?` : ""}, got ${JSON.stringify(v)}`;
      },
    },
  },
};

const target: Schema = { type: "string", pattern: /^(shim|agent|vm|containerd|init:[A-Za-z0-9._-]+)$/, patternText: "shim, agent, vm, containerd or init:<container>" };

/** Keys every step may have. */
const common: Record<string, Schema> = {
  id,
  do: str,
  expect,
  abort_on_fail: { type: "boolean" },
  repeat: posInt,
};

const container = { container: id };
const execId = { exec_id: { type: "string", pattern: /^[A-Za-z0-9{}]+(?:[._-][A-Za-z0-9{}]+)*$/, patternText: "an exec id ({i} is the repeat index)" } as Schema };
const timeout = { timeout_ms: posInt };

/** Each op: its own keys and which of them are required. */
export const OPS: Record<string, { keys: Record<string, Schema>; required?: string[]; doc: string }> = {
  create: { keys: { ...container, ...timeout }, required: ["container"], doc: "Task.Create (starts the shim for the first container)" },
  start: { keys: { ...container, ...execId, ...timeout }, required: ["container"], doc: "Task.Start" },
  exec: { keys: { ...container, ...execId, args: { type: "array", items: str, minItems: 1 }, stdin: { type: "boolean" }, terminal: { type: "boolean" }, ...timeout }, required: ["container", "exec_id", "args"], doc: "Task.Exec" },
  kill: { keys: { ...container, ...execId, signal: { type: "integer", min: 0, max: 64 }, all: { type: "boolean" }, ...timeout }, required: ["container"], doc: "Task.Kill (signal 15 by default)" },
  wait: { keys: { ...container, ...execId, ...timeout }, required: ["container"], doc: "Task.Wait" },
  state: { keys: { ...container, ...execId, ...timeout }, required: ["container"], doc: "Task.State" },
  delete: { keys: { ...container, ...execId, ...timeout }, required: ["container"], doc: "Task.Delete" },
  pids: { keys: { ...container, ...timeout }, required: ["container"], doc: "Task.Pids" },
  pause: { keys: { ...container, ...timeout }, required: ["container"], doc: "Task.Pause" },
  resume: { keys: { ...container, ...timeout }, required: ["container"], doc: "Task.Resume" },
  stats: { keys: { ...container, ...timeout }, required: ["container"], doc: "Task.Stats" },
  connect: { keys: { ...container, ...timeout }, required: ["container"], doc: "Task.Connect" },
  update: { keys: { ...container, memory_limit: posInt, ...timeout }, required: ["container", "memory_limit"], doc: "Task.Update" },
  closeio: { keys: { ...container, ...execId, ...timeout }, required: ["container"], doc: "Task.CloseIO (stdin)" },
  shutdown: { keys: { ...container, ...timeout }, required: ["container"], doc: "Task.Shutdown" },
  "shim-delete": { keys: { ...container }, required: ["container"], doc: "the shim binary's `delete`, as containerd runs it after a dead shim" },
  "write-stdin": { keys: { ...container, ...execId, data: str }, required: ["container", "data"], doc: "the client writes to the process's stdin fifo" },
  "close-stdin": { keys: { ...container, ...execId }, required: ["container"], doc: "the client closes its end of stdin" },
  sleep: { keys: { ms: posInt }, required: ["ms"], doc: "pause the scenario" },
  "await-event": { keys: { topic, ...container, ...execId, ...timeout }, required: ["topic"], doc: "wait until containerd received an event" },
  output: { keys: { ...container, ...execId, ...timeout }, required: ["container"], doc: "what the client read from stdout so far (expect.output: a substring)" },
  "kill-process": { keys: { target, signal: { type: "oneOf", alternatives: [{ type: "integer", min: 1, max: 64 }, { type: "string", pattern: /^SIG[A-Z0-9]+$/ }], text: "a signal number or name (SIGKILL)" } }, required: ["target"], doc: "signal the shim, the agent, containerd or a container's init" },
  "pause-process": { keys: { target }, required: ["target"], doc: "SIGSTOP a process" },
  "resume-process": { keys: { target }, required: ["target"], doc: "SIGCONT a process" },
  "containerd-down": { keys: {}, doc: "containerd goes away: its events socket and its connections to shims" },
  "containerd-up": { keys: {}, doc: "containerd comes back and reconnects to the shims" },
  reconnect: { keys: {}, doc: "containerd closes its connections to the shims and dials them again" },
  inject: { keys: { fault: id }, required: ["fault"], doc: "activate a named fault" },
  "create-sandbox": { keys: { ...timeout }, doc: "Sandbox API (sandbox_api: true): start the pod's shim as containerd 2.x's shim sandboxer does, then CreateSandbox with a host-network PodSandboxConfig" },
  "start-sandbox": { keys: { ...timeout }, doc: "Sandbox API: StartSandbox (boots the agent and the pod's own process)" },
  "stop-sandbox": { keys: { ...timeout }, doc: "Sandbox API: StopSandbox (no grace: CRI's StopPodSandbox after its containers)" },
  "wait-sandbox": { keys: { ...timeout }, doc: "Sandbox API: WaitSandbox (expect.exit_status)" },
  "sandbox-status": { keys: { ...timeout }, doc: "Sandbox API: SandboxStatus (expect.status READY or NOTREADY)" },
  "ping-sandbox": { keys: { ...timeout }, doc: "Sandbox API: PingSandbox" },
  "shutdown-sandbox": { keys: { ...timeout }, doc: "Sandbox API: ShutdownSandbox (the shim exits after it)" },
  heal: { keys: { fault: id }, required: ["fault"], doc: "deactivate a named fault" },
};

// Steps nest (parallel branches hold steps), so the schema refers to itself.
const steps: Schema = { type: "array", items: { type: "switch", pick: (v) => pickStep(v) }, minItems: 1 };

function pickStep(v: unknown): Schema | string {
  if (!isObject(v)) return `expected a step (a mapping with "do", or "parallel"), got ${JSON.stringify(v)}`;
  if ("parallel" in v) {
    return {
      type: "object",
      properties: { id, parallel: { type: "array", items: steps, minItems: 2 }, abort_on_fail: { type: "boolean" } },
      required: ["parallel"],
    };
  }
  if (!("do" in v)) return `a step needs "do" (one of ${Object.keys(OPS).join(", ")}) or "parallel"`;
  const op = OPS[String(v.do)];
  if (!op) return `do: expected one of ${Object.keys(OPS).join(", ")}, got ${JSON.stringify(v.do)}`;
  return { type: "object", properties: { ...common, ...op.keys }, required: op.required ?? [] };
}

const window: Schema = { type: "object", properties: { after: id, at_ms: nonNeg, for_ms: posInt } };

const toxic: Schema = {
  type: "switch",
  pick: (v) => {
    if (!isObject(v)) return "expected a toxic: a mapping with type and its attributes";
    if (!TOXIC_TYPES.includes(v.type as never)) return `toxic.type: expected one of ${TOXIC_TYPES.join(", ")}, got ${JSON.stringify(v.type)}`;
    const n: Schema = { type: "integer", min: 0 };
    return {
      type: "object",
      properties: {
        type: str,
        stream: { type: "string", enum: ["upstream", "downstream"] },
        toxicity: { type: "oneOf", alternatives: [{ type: "integer", min: 0, max: 1 }, { type: "string", pattern: /^(0(\.\d+)?|1(\.0+)?)$/ }], text: "a probability between 0 and 1" },
        latency: n,
        jitter: n,
        rate: n,
        average_size: n,
        size_variation: n,
        delay: n,
        timeout: n,
        bytes: n,
        every: posInt,
      },
      required: ["type"],
    };
  },
};

export const FAULT_SCOPES: Record<string, { keys: Record<string, Schema>; required: string[]; timed: boolean; doc: string }> = {
  "task-rpc": { keys: { method: { type: "string", enum: TASK_METHODS }, failpoint: str }, required: ["method", "failpoint"], timed: false, doc: "containerd's failpoint on a Task method (annotation io.containerd.runtime.v2.shim.failpoint.<Method>)" },
  "agent-rpc": { keys: { method: { type: "string", pattern: /^[A-Z][A-Za-z]+$/, patternText: "an agent method name such as CreateContainer" }, failpoint: str }, required: ["method", "failpoint"], timed: false, doc: "a failpoint on an agent method" },
  events: {
    keys: { action: { type: "string", enum: ["drop", "delay", "duplicate", "reorder"] }, topic, count: posInt, ms: posInt, window_size: { type: "integer", min: 2 } },
    required: ["action"],
    timed: false,
    doc: "a fault on the shim's events before they leave it",
  },
  forward: { keys: { action: { type: "string", enum: ["unavailable", "delay"] }, ms: posInt, window }, required: ["action"], timed: true, doc: "containerd's Events/Forward fails or stalls" },
  "containerd-link": { keys: { toxic, window }, required: ["toxic"], timed: true, doc: "a toxic on the ttrpc link from containerd to the shim" },
  "agent-link": { keys: { toxic }, required: ["toxic"], timed: false, doc: "a toxic on the link from the shim to its agent" },
  process: {
    keys: { target, action: { type: "string", enum: ["kill", "pause"] }, signal: { type: "oneOf", alternatives: [{ type: "integer", min: 1, max: 64 }, { type: "string", pattern: /^SIG[A-Z0-9]+$/ }], text: "a signal number or name" }, window },
    required: ["target", "action"],
    timed: true,
    doc: "kill or pause the shim, the agent, containerd or a container's init",
  },
};

const fault: Schema = {
  type: "switch",
  pick: (v) => {
    if (!isObject(v)) return "expected a fault: a mapping with name and scope";
    const sc = FAULT_SCOPES[String(v.scope)];
    if (!sc) return `scope: expected one of ${Object.keys(FAULT_SCOPES).join(", ")}, got ${JSON.stringify(v.scope)}`;
    // window is accepted everywhere so that the loader can say why it does not apply to a scope fixed at shim start.
    return { type: "object", properties: { name: id, scope: str, window, ...sc.keys }, required: ["name", "scope", ...sc.required] };
  },
};

const containerDef: Schema = {
  type: "object",
  properties: {
    args: { type: "array", items: str, minItems: 1 },
    env: strList,
    terminal: { type: "boolean" },
    stdin: { type: "boolean" },
    memory_limit: posInt,
    annotations: { type: "map", values: str },
    stdout: { type: "string", enum: ["open", "never-open", "none"] },
  },
  required: ["args"],
};

export const CHECK_NAMES = ["expectations", "answered", "event-order", "exit-once", "exit-consistent", "wait-then-stopped", "events", "no-leaks"] as const;

/** What skip_checks may name: a whole check, or one ordering rule inside event-order. */
const SKIPPABLE = [...CHECK_NAMES, ...ORDERING_RULES.map((r) => r.id)];

export const SCENARIO_SCHEMA: Schema = {
  type: "object",
  properties: {
    name: id,
    description: str,
    regression: { type: "object", properties: { issue: { type: "string", pattern: /^[\w.-]+\/[\w.-]+#\d+$/, patternText: "owner/repo#number" }, title: str, url: str }, required: ["issue", "title"] },
    tags: strList,
    driver: { type: "string", enum: ["emulator", "containerd"] },
    timeout_ms: posInt,
    shim_config: { type: "object", properties: { dial_timeout_ms: posInt, hypervisor: { type: "string", enum: ["none", "qemu"] } } },
    sandbox_api: { type: "boolean" },
    containers: { type: "map", values: containerDef, keyPattern: ID, keyText: "a container id (letters, digits, '.', '_', '-')" },
    faults: { type: "array", items: fault },
    steps,
    abort_on_fail: { type: "boolean" },
    expect: {
      type: "object",
      properties: {
        events: { type: "map", values: { type: "array", items: topic } },
        no_events: { type: "map", values: { type: "array", items: topic } },
        no_leaks: { type: "boolean" },
        call_bound_ms: posInt,
        skip_checks: {
          type: "map",
          values: str,
          keyPattern: new RegExp(`^(${SKIPPABLE.map((k) => k.replace(/\./g, "\\.")).join("|")})$`),
          keyText: `a check (${CHECK_NAMES.join(", ")}) or an ordering rule of event-order (${ORDERING_RULES.map((r) => r.id).join(", ")})`,
        },
      },
    },
  },
  required: ["name", "description", "containers", "steps"],
};
