// The scenario file format (scenarios/*.yaml), declared once: the loader
// validates with it, the TypeScript types are inferred from it, and
// scenarios/scenario.schema.json (for editors) is generated from it
// (`npm run scenarios:schema`). Steps are chosen by `do`, faults by `scope`
// (their kinds live in src/faults/kinds/): each gets exactly the keys that
// mean something for it. Error wording is format-errors.ts's.
import { z } from "zod";
import { identifier, ID_PATTERN, nonNeg, posInt, signal, target, topic } from "./format-values";
import { faultSchema } from "../faults/kinds";
import { ORDERING_RULES, RULES } from "../contract/rules";
import { nearest, show } from "./format-errors";

export const CODE_NAMES = ["OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"] as const;

export const CHECK_NAMES = ["expectations", "answered", "event-order", "exit-once", "exit-consistent", "wait-then-stopped", "events", "no-leaks"] as const;

const RULE_IDS = RULES.map((r) => r.id) as [string, ...string[]];

const expectSchema = z
  .strictObject({
    outcome: z.enum(["ok", "fail", "info", "error", "any", "answered"]).optional().meta({ description: "ok, fail (the shim answered an error), info (the client gave up), error (fail or info), answered (ok or fail), any" }),
    error: z
      .union([z.enum(CODE_NAMES), z.array(z.enum(CODE_NAMES)).min(1)], { error: "an error code name (NotFound, Unavailable…) or a list of them" })
      .optional()
      .meta({ description: "an error code name, or a list of acceptable ones" }),
    message: z.string().optional().meta({ description: "a substring of the error message" }),
    within_ms: posInt.optional().meta({ description: "the answer came within this long" }),
    exit_status: nonNeg.optional().meta({ description: "from Wait / State / Delete" }),
    status: z.enum(["CREATED", "RUNNING", "STOPPED", "PAUSED", "UNKNOWN", "READY", "NOTREADY"]).optional().meta({ description: "task states; READY and NOTREADY are a sandbox's (sandbox-status)" }),
    output: z.string().optional().meta({ description: "(output op) the client's stdout contains this" }),
    fields: z
      .record(z.string(), z.union([z.string(), z.int(), z.boolean()], { error: "a string, integer or boolean" }))
      .optional()
      .meta({ description: "(await-event op) fields of the event payload" }),
    rule: z
      .enum(RULE_IDS, {
        error: (iss) => {
          const near = typeof iss.input === "string" ? nearest(iss.input, RULE_IDS) : null;
          return `expected a contract rule id (see docs/contract/README.md)${near ? `, did you mean "${near}"?` : ""}, got ${show(iss.input)}`;
        },
      })
      .optional()
      .meta({ description: "the contract rule this expectation stands for: a miss cites it in the verdict" }),
  })
  .meta({ id: "step-expect", description: "what the step's answer must be" });

/** Keys every op step may have. */
const common = {
  id: identifier.optional().meta({ description: "the step's id (a fault window `after` it is in place when it begins)" }),
  expect: expectSchema.optional(),
  abort_on_fail: z.boolean().optional(),
  repeat: posInt.optional().meta({ description: "N concurrent copies; {i} in exec_id/data is the copy's index" }),
};

const container = { container: identifier };
const optContainer = { container: identifier.optional() };
const execId = { exec_id: z.string().regex(/^[A-Za-z0-9{}]+(?:[._-][A-Za-z0-9{}]+)*$/, { error: "an exec id ({i} is the repeat index)" }).optional() };
const timeout = { timeout_ms: posInt.optional().meta({ description: "the client's deadline (default 10 s; Wait has the rest of the run)" }) };

const op = <D extends string, K extends z.ZodRawShape>(name: D, keys: K, doc: string) => z.strictObject({ do: z.literal(name), ...common, ...keys }).meta({ description: doc });

const OP_SCHEMAS = [
  op("create", { ...container, ...timeout }, "Task.Create (starts the shim for the first container)"),
  op("start", { ...container, ...execId, ...timeout }, "Task.Start"),
  op("exec", { ...container, exec_id: execId.exec_id.unwrap(), args: z.array(z.string()).min(1), stdin: z.boolean().optional(), terminal: z.boolean().optional(), ...timeout }, "Task.Exec"),
  op("kill", { ...container, ...execId, signal: z.int().min(0).max(64).optional(), all: z.boolean().optional(), ...timeout }, "Task.Kill (signal 15 by default)"),
  op("wait", { ...container, ...execId, ...timeout }, "Task.Wait"),
  op("state", { ...container, ...execId, ...timeout }, "Task.State"),
  op("delete", { ...container, ...execId, ...timeout }, "Task.Delete"),
  op("pids", { ...container, ...timeout }, "Task.Pids"),
  op("pause", { ...container, ...timeout }, "Task.Pause"),
  op("resume", { ...container, ...timeout }, "Task.Resume"),
  op("stats", { ...container, ...timeout }, "Task.Stats"),
  op("connect", { ...container, ...timeout }, "Task.Connect"),
  op("update", { ...container, memory_limit: posInt, ...timeout }, "Task.Update"),
  op("closeio", { ...container, ...execId, ...timeout }, "Task.CloseIO (stdin)"),
  op("shutdown", { ...container, ...timeout }, "Task.Shutdown"),
  op("shim-delete", { ...container }, "the shim binary's `delete`, as containerd runs it after a dead shim"),
  op("write-stdin", { ...container, ...execId, data: z.string() }, "the client writes to the process's stdin fifo"),
  op("close-stdin", { ...container, ...execId }, "the client closes its end of stdin"),
  op("sleep", { ms: posInt }, "pause the scenario"),
  op("await-event", { topic, ...optContainer, ...execId, ...timeout }, "wait until containerd received an event"),
  op("output", { ...container, ...execId, ...timeout }, "what the client read from stdout so far (expect.output: a substring)"),
  op("kill-process", { target, signal: signal.optional() }, "signal the shim, the agent, containerd or a container's init"),
  op("pause-process", { target }, "SIGSTOP a process"),
  op("resume-process", { target }, "SIGCONT a process"),
  op("containerd-down", {}, "containerd goes away: its events socket and its connections to shims"),
  op("containerd-up", {}, "containerd comes back and reconnects to the shims"),
  op("reconnect", {}, "containerd closes its connections to the shims and dials them again"),
  op("inject", { fault: identifier }, "activate a named fault"),
  op("create-sandbox", { ...timeout }, "Sandbox API (sandbox_api: true): start the pod's shim as containerd 2.x's shim sandboxer does, then CreateSandbox with a host-network PodSandboxConfig"),
  op("start-sandbox", { ...timeout }, "Sandbox API: StartSandbox (boots the agent and the pod's own process)"),
  op("stop-sandbox", { ...timeout }, "Sandbox API: StopSandbox (no grace: CRI's StopPodSandbox after its containers)"),
  op("wait-sandbox", { ...timeout }, "Sandbox API: WaitSandbox (expect.exit_status)"),
  op("sandbox-status", { ...timeout }, "Sandbox API: SandboxStatus (expect.status READY or NOTREADY)"),
  op("ping-sandbox", { ...timeout }, "Sandbox API: PingSandbox"),
  op("shutdown-sandbox", { ...timeout }, "Sandbox API: ShutdownSandbox (the shim exits after it)"),
  op("heal", { fault: identifier }, "deactivate a named fault"),
] as const;

export const OP_NAMES = OP_SCHEMAS.map((s) => s.shape.do.value);

/** What a step that has neither `do` nor `parallel` is told. */
export const STEP_NEEDS_DO = `a step needs "do" (one of ${OP_NAMES.join(", ")}) or "parallel"`;

// Steps nest (parallel branches hold steps); a parallel step is the one without `do`.
const parallelStep = z
  .strictObject({
    do: z.undefined().optional(),
    id: identifier.optional(),
    get parallel(): z.ZodArray<z.ZodArray<typeof stepSchema>> {
      return z.array(z.array(stepSchema).min(1), { error: (iss) => (iss.code === "invalid_type" && iss.input === undefined ? STEP_NEEDS_DO : undefined) }).min(2);
    },
    abort_on_fail: z.boolean().optional(),
  })
  .meta({ description: "branches of steps run at the same time, each in order" });

export const stepSchema: z.ZodDiscriminatedUnion<[typeof parallelStep, ...typeof OP_SCHEMAS]> = z.discriminatedUnion("do", [parallelStep, ...OP_SCHEMAS]).meta({ id: "step" });

const containerDef = z.strictObject({
  args: z.array(z.string()).min(1),
  env: z.array(z.string()).optional(),
  terminal: z.boolean().optional(),
  stdin: z.boolean().optional().meta({ description: "make a stdin fifo" }),
  memory_limit: posInt.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  stdout: z.enum(["open", "never-open", "none"]).optional().meta({ description: "stdio fault: never-open makes the fifo that nobody reads" }),
});

/** What skip_checks may name: a whole check, or one ordering rule inside event-order. */
const SKIPPABLE = [...CHECK_NAMES, ...ORDERING_RULES.map((r) => r.id)] as [string, ...string[]];

const scenarioExpect = z.strictObject({
  events: z.record(z.string(), z.array(topic)).optional().meta({ description: "per container: topics that must arrive in this order (a subsequence)" }),
  no_events: z.record(z.string(), z.array(topic)).optional().meta({ description: "per container: topics that must never arrive" }),
  no_leaks: z.boolean().optional(),
  call_bound_ms: posInt.optional().meta({ description: "every call answered or given up on within this (default 15 s)" }),
  skip_checks: z
    .partialRecord(z.enum(SKIPPABLE).meta({ description: `a check (${CHECK_NAMES.join(", ")}) or an ordering rule of event-order (${ORDERING_RULES.map((r) => r.id).join(", ")})` }), z.string())
    .optional()
    .meta({ description: "a check, or one ordering rule of event-order, with the reason it does not apply" }),
});

export const scenarioFormat = z
  .strictObject({
    name: identifier,
    description: z.string(),
    regression: z
      .strictObject({ issue: z.string().regex(/^[\w.-]+\/[\w.-]+#\d+$/, { error: "owner/repo#number" }), title: z.string(), url: z.string().optional() })
      .optional()
      .meta({ description: "the real bug it reproduces" }),
    tags: z.array(z.string()).default([]),
    driver: z.enum(["emulator", "containerd"]).default("emulator"),
    timeout_ms: posInt.default(60_000).meta({ description: "the whole run" }),
    shim_config: z.strictObject({ dial_timeout_ms: posInt.optional(), hypervisor: z.enum(["none", "qemu"]).optional() }).optional(),
    factory: z
      .strictObject({ pool_size: z.int().min(0).max(8).default(1).meta({ description: "warm agents it keeps" }) })
      .optional()
      .meta({ description: "run a factory of warm sandboxes (`shimlab factory`) beside the shim, whose configuration enables it" }),
    sandbox_api: z.boolean().default(false).meta({ description: 'the pod "pod" is made through containerd 2.x\'s Sandbox API' }),
    containers: z.record(z.string().regex(ID_PATTERN, { error: "a container id (letters, digits, '.', '_', '-')" }), containerDef).meta({ description: "the first is the pod's sandbox; the others join its shim" }),
    faults: z.array(faultSchema).default([]),
    steps: z.array(stepSchema).min(1),
    abort_on_fail: z.boolean().default(true).meta({ description: "a step missing its expectation stops the rest" }),
    expect: scenarioExpect.default({}),
  })
  .meta({ title: "shimlab scenario", description: "A fault scenario for shimlab (scenarios/README.md)" });

/** A scenario file as validated, defaults filled in. */
export type ScenarioFile = z.infer<typeof scenarioFormat>;
export type StepFile = z.infer<typeof stepSchema>;
export type OpStepFile = Extract<StepFile, { do: string }>;
export type StepExpect = z.infer<typeof expectSchema>;
export type ContainerDef = z.infer<typeof containerDef>;
export type ScenarioExpect = z.infer<typeof scenarioExpect>;
export type Regression = NonNullable<ScenarioFile["regression"]>;

/** The format as a JSON Schema (draft 7, which every YAML language server reads), for editors: what scenarios/scenario.schema.json holds. */
export function scenarioJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(scenarioFormat, {
    target: "draft-7",
    io: "input",
    unrepresentable: "any",
    // A parallel step's `do` must be absent: JSON Schema says that with `not: {}`.
    override: (ctx) => {
      if (ctx.zodSchema._zod.def.type === "undefined") (ctx.jsonSchema as Record<string, unknown>).not = {};
    },
  }) as Record<string, unknown>;
}

/** scenarios/scenario.schema.json's text, as `npm run scenarios:schema` writes it. */
export function scenarioJsonSchemaText(): string {
  return JSON.stringify(scenarioJsonSchema(), null, 2) + "\n";
}
