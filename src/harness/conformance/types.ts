// The vocabulary of the conformance suite: a check names the contract rule it
// comes from and runs against one shim through a CheckContext.
import type { CheckContext } from "./context";

/** Where every rule is written down (sections are cited in each check's rule). */
export const CONTRACT = "shared/notes/containerd-shim.md";

export interface Check {
  /** kebab-case, unique, stable: tests and diffs refer to it. */
  name: string;
  group: string;
  /** The runtime-v2 / containerd rule, with its section of the contract. */
  rule: string;
  /** Throws to fail; may return a detail for a pass. */
  run(ctx: CheckContext): Promise<string | void>;
}

export type Status = "pass" | "fail" | "skip";

export interface Observation {
  key: string;
  value: string;
  /** Set when the value depends on a documented profile difference (names the difference). */
  documented?: string;
}

export interface CheckResult {
  name: string;
  group: string;
  rule: string;
  status: Status;
  detail: string;
  ms: number;
  observations: Observation[];
}

export interface SuiteReport {
  shim: string;
  profile: string;
  contract: string;
  startedAt: string;
  ms: number;
  checks: CheckResult[];
  counts: Record<Status, number>;
  /** Processes the shim left behind after every clean-up (killed by the runner). */
  leftovers: string[];
}

/** A check failing: the message says what the shim did against what the rule wants. */
export class CheckFailure extends Error {}

/** A check the profile explicitly does not apply, with the reason (never silent). */
export class CheckSkipped extends Error {}
