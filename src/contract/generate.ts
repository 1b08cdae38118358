// The generated parts of docs/contract/*.md: each rule table comes from the
// rules (src/contract/rules/*.ts), the versions table from the measured
// differences (src/harness/peers/differences.ts), the index from both. Pages
// are hand-written around marked blocks:
//   <!-- contract:rules SECTION --> … <!-- /contract:rules -->
//   <!-- contract:versions --> … <!-- /contract:versions -->
//   <!-- contract:index --> … <!-- /contract:index -->
// `npm run docs:contract` rewrites the blocks; a unit test regenerates and
// compares, so the pages cannot drift from the data.
import { RULES, type Rule } from "./rules";
import { SECTIONS } from "./sections";
import { ALL_CHECKS } from "../harness/conformance/checks";
import { CHECK_RULES } from "../scenarios/checks";
import { DIFFERENCES, shows } from "../harness/peers/differences";
import { loadScenarioFile, scenarioFiles } from "../scenarios/load";
import type { Step } from "../scenarios/types";
import { packageRoot } from "./cite";
import path from "node:path";
import type { Source } from "./types";

const SOURCE: Record<Source, string> = {
  "runtime-v2": "runtime v2 docs",
  containerd: "containerd",
  "runc-shim": "runc's shim",
  shimlab: "shimlab",
};

/** Table cells cannot hold a raw `|` or a line break. */
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

let stepCiters: Map<string, string[]> | undefined;

/** Per rule id, the shipped scenarios with a step whose expectation names it. */
function scenariosNaming(id: string): string[] {
  if (!stepCiters) {
    stepCiters = new Map();
    const named = (steps: Step[]): string[] => steps.flatMap((st) => (st.kind === "parallel" ? st.branches.flatMap(named) : st.expect?.rule ? [st.expect.rule] : []));
    for (const f of scenarioFiles([path.join(packageRoot(), "scenarios")])) {
      const s = loadScenarioFile(f);
      for (const r of new Set(named(s.steps))) stepCiters.set(r, [...(stepCiters.get(r) ?? []), s.name]);
    }
  }
  return stepCiters.get(id) ?? [];
}

/** Who holds a shim to the rule: conformance checks, scenario checks and steps, the ordering checker, or nobody on purpose. */
export function heldBy(r: Rule): string[] {
  const out: string[] = [];
  const checks = ALL_CHECKS.filter((c) => c.rule === r.id || c.also?.includes(r.id)).map((c) => c.name);
  if (checks.length) out.push(`conformance ${checks.map((n) => `\`${n}\``).join(", ")}`);
  const scen = Object.entries(CHECK_RULES)
    .filter(([, ids]) => ids.includes(r.id))
    .map(([n]) => n);
  if (r.kind === "ordering") out.push(`ordering checker (trace pages${scen.length ? ", scenario check `event-order`" : ""})`);
  else if (scen.length) out.push(`scenario check ${scen.map((n) => `\`${n}\``).join(", ")}`);
  const steps = scenariosNaming(r.id);
  if (steps.length) out.push(`a step of scenario ${steps.map((n) => `\`${n}\``).join(", ")}`);
  return out;
}

function ruleRow(r: Rule): string {
  const head = `<a id="${r.id}"></a>\`${r.id}\`<br>**${r.level}** · ${SOURCE[r.source]}`;
  const body = r.why ? `${r.text}<br>*Why:* ${r.why}` : r.text;
  const held = r.kind === "prose" ? "prose: no single check can see it" : heldBy(r).join("; ") || "**nothing yet**";
  return `| ${cell(head)} | ${cell(body)} | ${cell(held)} |`;
}

export function rulesBlock(section: string): string {
  const rs = RULES.filter((r) => r.section === section);
  if (!rs.length) throw new Error(`contract section ${section} has no rules`);
  return ["| rule | what a shim must do | held by |", "|---|---|---|", ...rs.map(ruleRow)].join("\n");
}

const SERIES = [
  { name: "1.6", major: 1, minor: 6 },
  { name: "1.7", major: 1, minor: 7 },
  { name: "2.1", major: 2, minor: 1 },
];

export function versionsBlock(): string {
  const rows = DIFFERENCES.map((d) => {
    const on = SERIES.filter((s) => shows(s, d.id)).map((s) => s.name);
    return `| <a id="${d.id}"></a>\`${d.id}\` | ${on.join(", ")} | ${cell(d.what)} | ${cell(d.seen)} |`;
  });
  return ["| difference | shows on | what | how it was established |", "|---|---|---|---|", ...rows].join("\n");
}

export function indexBlock(): string {
  const n = (k: Rule["kind"]) => RULES.filter((r) => r.kind === k).length;
  const pages = [...new Set(SECTIONS.map((s) => s.page))];
  const lines = [
    `${RULES.length} rules on ${pages.length} pages: ${n("checked")} held by conformance or scenario checks, ${n("ordering")} ordering rules tested on every trace and scenario, ${n("prose")} prose on purpose.`,
    "",
    "| rule | level | where |",
    "|---|---|---|",
  ];
  for (const r of RULES) {
    const s = SECTIONS.find((x) => x.id === r.section)!;
    lines.push(`| [\`${r.id}\`](${r.page}.md#${r.id}) | ${r.level} | ${r.page}.md, ${cell(s.title)} |`);
  }
  return lines.join("\n");
}

// A block's old content may not hold another block's opening: a missing closing marker is an error, not a merge.
const BLOCK = /<!-- contract:(rules|versions|index)(?: ([a-z-]+))? -->((?:(?!<!-- contract:)[\s\S])*?)<!-- \/contract:\1 -->/g;

/** The page with every marked block filled from the data; the rest is left as written. */
export function regenerate(page: string): string {
  const out = page.replace(BLOCK, (_m, kind: string, arg: string | undefined) => {
    const body = kind === "rules" ? rulesBlock(arg ?? "") : kind === "versions" ? versionsBlock() : indexBlock();
    return `<!-- contract:${kind}${arg ? ` ${arg}` : ""} -->\n${body}\n<!-- /contract:${kind} -->`;
  });
  const opened = (out.match(/<!-- contract:/g) ?? []).length;
  const closed = (out.match(/<!-- \/contract:/g) ?? []).length;
  if (opened !== closed) throw new Error(`unbalanced contract blocks: ${opened} opened, ${closed} closed`);
  return out;
}

/** The sections a page's blocks print (to check every section is printed exactly once). */
export function sectionsIn(page: string): string[] {
  return [...page.matchAll(/<!-- contract:rules ([a-z-]+) -->/g)].map((m) => m[1]);
}
