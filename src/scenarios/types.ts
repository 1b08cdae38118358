// A scenario as the loader hands it to the runner (the file's format, its
// types included, is src/scenarios/format.ts), and what a run of it produces.
import type { OpStepFile, Regression, ScenarioFile } from "./format";

export type { ContainerDef, Regression, ScenarioExpect, StepExpect } from "./format";
export type { Window } from "./format-values";
export type { FaultDef } from "../faults/kinds";

export type Outcome = "ok" | "fail" | "info";

type KeysOfUnion<T> = T extends unknown ? keyof T : never;
/** Every key of any op, optional: the runner reads a step's keys without narrowing on `do`. */
type AnyOpKeys<T> = { [K in KeysOfUnion<T>]?: T extends unknown ? (K extends keyof T ? T[K] : never) : never };

export type OpStep = AnyOpKeys<OpStepFile> & {
  kind: "op";
  do: OpStepFile["do"];
  /** Where it was written, for messages. */
  where: string;
};

export interface ParallelStep {
  kind: "parallel";
  id?: string;
  branches: Step[][];
  abort_on_fail?: boolean;
  where: string;
}

export type Step = OpStep | ParallelStep;

/**
 * A scenario file, validated, with its defaults. With sandbox_api the pod is
 * made through containerd 2.x's Sandbox API (sandboxer = "shim"), as sandbox
 * SANDBOX_API_POD: its own shim and the *-sandbox steps; every container joins
 * it. Otherwise the first container is the pod's sandbox task (a pause
 * container's place).
 */
export type Scenario = Omit<ScenarioFile, "steps"> & {
  file: string;
  steps: Step[];
};

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
