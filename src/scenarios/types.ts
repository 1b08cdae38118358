// A scenario as it is written in scenarios/*.yaml (after validation), and
// what a run of it produces.

export type Outcome = "ok" | "fail" | "info";

export interface Regression {
  issue: string;
  title: string;
  url?: string;
}

export interface ContainerDef {
  args: string[];
  env?: string[];
  terminal?: boolean;
  stdin?: boolean;
  memory_limit?: number;
  annotations?: Record<string, string>;
  /** Stdio fault: the client makes the stdout fifo but never opens it. */
  stdout?: "open" | "never-open" | "none";
}

export interface Window {
  /** Activate when this step begins (default: at the start of the run). */
  after?: string;
  /** Or this long after the run started. */
  at_ms?: number;
  /** Heal after this long (default: never, until a heal step). */
  for_ms?: number;
}

export interface FaultDef {
  name: string;
  scope: "task-rpc" | "agent-rpc" | "events" | "forward" | "containerd-link" | "agent-link" | "process";
  /** task-rpc / agent-rpc: the method. */
  method?: string;
  /** task-rpc / agent-rpc: containerd's failpoint grammar. */
  failpoint?: string;
  /** events: drop | delay | duplicate | reorder; forward: unavailable | delay; process: kill | pause. */
  action?: string;
  topic?: string;
  count?: number;
  ms?: number;
  window_size?: number;
  /** containerd-link / agent-link: a toxiproxy toxic. */
  toxic?: { type: string; stream?: "upstream" | "downstream"; toxicity?: number; [k: string]: unknown };
  /** process: shim | agent | vm (QEMU) | containerd | init:<container> */
  target?: string;
  signal?: string | number;
  window?: Window;
}

export interface StepExpect {
  /** ok, fail (the peer said no), info (the client gave up), error (fail or info), answered (ok or fail), any. */
  outcome?: Outcome | "error" | "any" | "answered";
  /** An error code name (NotFound…), or a list of acceptable ones. */
  error?: string | string[];
  message?: string;
  within_ms?: number;
  exit_status?: number;
  /** Task states; READY and NOTREADY are a sandbox's (sandbox-status). */
  status?: "CREATED" | "RUNNING" | "STOPPED" | "PAUSED" | "UNKNOWN" | "READY" | "NOTREADY";
  output?: string;
  /** await-event: the event payload must contain these fields. */
  fields?: Record<string, unknown>;
  /** The contract rule this expectation stands for: a miss cites it in the verdict. */
  rule?: string;
}

export interface OpStep {
  kind: "op";
  id?: string;
  do: string;
  container?: string;
  exec_id?: string;
  args?: string[];
  stdin?: boolean;
  terminal?: boolean;
  signal?: number;
  all?: boolean;
  timeout_ms?: number;
  ms?: number;
  data?: string;
  topic?: string;
  target?: string;
  fault?: string;
  memory_limit?: number;
  /** Run this step N times (in parallel branches: {i} in exec_id/data is the index). */
  repeat?: number;
  expect?: StepExpect;
  abort_on_fail?: boolean;
  /** Where it was written, for messages. */
  where: string;
}

export interface ParallelStep {
  kind: "parallel";
  id?: string;
  branches: Step[][];
  abort_on_fail?: boolean;
  where: string;
}

export type Step = OpStep | ParallelStep;

export interface ScenarioExpect {
  /** Per container: topics that must appear in this order (a subsequence of what arrived). */
  events?: Record<string, string[]>;
  /** Topics that must never arrive for a container. */
  no_events?: Record<string, string[]>;
  no_leaks?: boolean;
  /** Every call answered (ok, error, or given up on by the client) within this bound. */
  call_bound_ms?: number;
  /** Checks (or single ordering rules of event-order) to switch off, with the reason they do not apply. */
  skip_checks?: Record<string, string>;
}

export interface Scenario {
  file: string;
  name: string;
  description: string;
  regression?: Regression;
  tags: string[];
  driver: "emulator" | "containerd";
  timeout_ms: number;
  shim_config?: { dial_timeout_ms?: number; hypervisor?: "none" | "qemu" };
  /**
   * The pod is made through containerd 2.x's Sandbox API (sandboxer = "shim"), as sandbox
   * SANDBOX_API_POD: its own shim and the *-sandbox steps; every container joins it. Otherwise the
   * first container is the pod's sandbox task (a pause container's place).
   */
  sandbox_api: boolean;
  containers: Record<string, ContainerDef>;
  faults: FaultDef[];
  steps: Step[];
  abort_on_fail: boolean;
  expect: ScenarioExpect;
}

/** One line of the Jepsen-style history: an invoke, then its ok, fail or info. */
export interface HistoryOp {
  index: number;
  /** Which logical client did it (the branch of a parallel step). */
  process: string;
  type: "invoke" | Outcome;
  f: string;
  container?: string;
  exec_id?: string;
  value?: unknown;
  error?: { code: string; message: string };
  /** ms since the run started. */
  time: number;
  step?: string;
}

/** A contract rule a verdict check holds the shim to, as the reports cite it. */
export interface RuleRef {
  rule: string;
  /** docs/contract/<page>.md#<rule> */
  ruleDoc: string;
  /** Set when this run broke it. */
  broken?: true;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  skipped?: string;
  problems: string[];
  /** The rules the check stands for (none for the scenario's own expectations), the broken ones marked. */
  rules: RuleRef[];
}

export interface ScenarioResult {
  name: string;
  file: string;
  regression?: Regression;
  verdict: "pass" | "fail" | "skip";
  reason?: string;
  ms: number;
  checks: CheckResult[];
  history: HistoryOp[];
  events: { seq: number; time: number; topic: string; event: Record<string, unknown> }[];
  faults: { time: number; fault: string; what: string }[];
  mutants?: string[];
}
