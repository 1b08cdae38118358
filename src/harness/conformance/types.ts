// The vocabulary of the conformance suite: a check names the contract rule it
// comes from (by id, src/contract/rules.ts) and runs against one shim through
// a CheckContext.
import type { CheckContext } from "./context";
import type { RuleId } from "../../contract/rules";

/** Where every rule is written down: shimlab's own reference, in the repository and in an installed copy. */
export const CONTRACT = "docs/contract/README.md";

export interface Check {
  /** kebab-case, unique, stable: tests and diffs refer to it. */
  name: string;
  group: string;
  /** The contract rule the check holds a shim to. */
  rule: RuleId;
  /** Further rules the same observation tests (printed after the main one). */
  also?: RuleId[];
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
  rule: RuleId;
  also: RuleId[];
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
