// The suite's outputs: a line per check while it runs, a summary, JUnit XML
// for CI, and JSON { shim, checks: [{ name, rule, ruleDoc, status, detail }] }.
// Every rule is printed as its citation: the id and its entry in docs/contract.
import { citation, contractHtmlDir, packageRoot, ruleDoc } from "../../contract/cite";
import { rule as contractRule } from "../../contract/rules";
import type { CheckResult, SuiteReport } from "./types";

const MARK = { pass: "ok  ", fail: "FAIL", skip: "skip" } as const;

export function progressLine(r: CheckResult, i: number, total: number): string {
  const n = String(i + 1).padStart(String(total).length);
  const d = r.status === "pass" ? "" : `\n        ${r.detail}${r.status === "fail" ? `\n        rule: ${citation(r.rule)}` : ""}`;
  return `[${n}/${total}] ${MARK[r.status]} ${r.group}/${r.name} (${r.ms} ms)${d}\n`;
}

export function summary(rep: SuiteReport): string {
  const lines = [`${rep.shim} (profile ${rep.profile}): ${rep.counts.pass} passed, ${rep.counts.fail} failed, ${rep.counts.skip} skipped of ${rep.checks.length} checks in ${(rep.ms / 1000).toFixed(1)} s`];
  if (rep.leftovers.length) lines.push(`  LEAK: ${rep.leftovers.length} processes outlived the clean-up (killed): ${rep.leftovers.join("; ")}`);
  for (const r of rep.checks.filter((c) => c.status !== "pass")) {
    lines.push(`  ${MARK[r.status]} ${r.name}: ${r.detail}\n       rule: ${citation(r.rule)}`);
    if (r.also.length) lines.push(`       also: ${r.also.map(citation).join(", ")}`);
  }
  // The citations are relative to shimlab's own directory, which a reader of CI output or an installed copy may not know.
  if (rep.counts.fail) lines.push(`  (rule paths are under ${packageRoot()}; HTML form: ${contractHtmlDir()}/README.html)`);
  return lines.join("\n") + "\n";
}

export function toJson(rep: SuiteReport): string {
  return (
    JSON.stringify(
      {
        shim: rep.shim,
        profile: rep.profile,
        contract: rep.contract,
        startedAt: rep.startedAt,
        ms: rep.ms,
        counts: rep.counts,
        leftovers: rep.leftovers,
        checks: rep.checks.map((c) => ({
          name: c.name,
          group: c.group,
          rule: c.rule,
          ruleDoc: ruleDoc(c.rule),
          ruleText: contractRule(c.rule).text,
          also: c.also.map((id) => ({ rule: id, ruleDoc: ruleDoc(id) })),
          status: c.status,
          detail: c.detail,
          ms: c.ms,
          observations: c.observations,
        })),
      },
      null,
      2,
    ) + "\n"
  );
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function toJunit(rep: SuiteReport): string {
  const suite = `shimlab conformance: ${rep.shim} (${rep.profile})`;
  const out = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<testsuites name="${esc(suite)}" tests="${rep.checks.length}" failures="${rep.counts.fail}" skipped="${rep.counts.skip}" time="${(rep.ms / 1000).toFixed(3)}">`,
    `  <testsuite name="${esc(suite)}" tests="${rep.checks.length}" failures="${rep.counts.fail}" skipped="${rep.counts.skip}" time="${(rep.ms / 1000).toFixed(3)}" timestamp="${rep.startedAt}">`,
  ];
  for (const c of rep.checks) {
    const open = `    <testcase classname="conformance.${esc(c.group)}" name="${esc(c.name)}" time="${(c.ms / 1000).toFixed(3)}">`;
    const cites = [c.rule, ...c.also].map(citation);
    const props = `      <properties><property name="rule" value="${esc(cites[0])}"/>${c.also.length ? `<property name="also" value="${esc(cites.slice(1).join(", "))}"/>` : ""}</properties>`;
    const why = [`rule: ${cites[0]}`, contractRule(c.rule).text, ...(c.also.length ? [`also: ${cites.slice(1).join(", ")}`] : [])].join("\n");
    const body = c.status === "fail" ? `      <failure message="${esc(c.detail)}">${esc(why)}</failure>` : c.status === "skip" ? `      <skipped message="${esc(c.detail)}"/>` : c.detail ? `      <system-out>${esc(c.detail)}</system-out>` : "";
    out.push(open, props, ...(body ? [body] : []), `    </testcase>`);
  }
  out.push(`  </testsuite>`, `</testsuites>`);
  return out.join("\n") + "\n";
}
