// Every rule of the contract, once. Checks, scenarios and traces name rules by
// id (a typo is a compile error, RuleId is the union of the ids); the docs'
// rule tables are generated from this list (src/contract/generate.ts).
import { binaryRules } from "./rules/binary";
import { wireRules } from "./rules/wire";
import { taskApiRules } from "./rules/task-api";
import { eventRules } from "./rules/events";
import { stdioRules } from "./rules/stdio";
import { exitRules } from "./rules/exit-status";
import { podRules } from "./rules/pods";
import { sandboxApiRules } from "./rules/sandbox-api";
import { section } from "./sections";
import type { RuleDef } from "./types";

const ALL = [...binaryRules, ...wireRules, ...taskApiRules, ...eventRules, ...stdioRules, ...exitRules, ...podRules, ...sandboxApiRules] as const;

export type RuleId = (typeof ALL)[number]["id"];

export interface Rule extends RuleDef {
  readonly id: RuleId;
  /** docs/contract/<page>.md */
  readonly page: string;
}

export const RULES: readonly Rule[] = ALL.map((r: RuleDef) => ({ ...r, page: section(r.section).page }) as Rule);

const BY_ID = new Map<string, Rule>();
for (const r of RULES) {
  if (BY_ID.has(r.id)) throw new Error(`duplicate contract rule ${r.id}`);
  if (!/^[a-z0-9-]+\.[a-z0-9-]+$/.test(r.id)) throw new Error(`contract rule id ${JSON.stringify(r.id)} is not <area>.<name>`);
  BY_ID.set(r.id, r);
}

export function isRuleId(id: string): id is RuleId {
  return BY_ID.has(id);
}

export function rule(id: string): Rule {
  const r = BY_ID.get(id);
  if (!r) throw new Error(`no contract rule ${JSON.stringify(id)}`);
  return r;
}

/** The rules the event-ordering checker tests. */
export const ORDERING_RULES: readonly Rule[] = RULES.filter((r) => r.kind === "ordering");
