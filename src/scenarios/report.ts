// Reports: JSON (everything, history included) and JUnit XML (one testcase
// per scenario, the failed checks as the failure), for CI dashboards.
import fs from "node:fs";
import path from "node:path";
import { formatHistory } from "./history";
import type { CheckResult, ScenarioResult } from "./types";

/** The broken rules of a failed check, each as `id (docs/contract/<page>.md#id)`. */
export function brokenRules(c: CheckResult): string[] {
  return c.rules.filter((r) => r.broken).map((r) => `${r.rule} (${r.ruleDoc})`);
}

export interface Summary {
  total: number;
  passed: number;
  failed: number;
  skipped: number;
  ms: number;
}

export function summarize(results: ScenarioResult[]): Summary {
  return {
    total: results.length,
    passed: results.filter((r) => r.verdict === "pass").length,
    failed: results.filter((r) => r.verdict === "fail").length,
    skipped: results.filter((r) => r.verdict === "skip").length,
    ms: results.reduce((a, r) => a + r.ms, 0),
  };
}

export function jsonReport(results: ScenarioResult[]): string {
  return JSON.stringify({ tool: "shimlab scenario", generatedAt: new Date().toISOString(), summary: summarize(results), results }, null, 2);
}

const esc = (s: string) =>
  s
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");

export function junitReport(results: ScenarioResult[], suite = "shimlab scenarios"): string {
  const s = summarize(results);
  const cases = results.map((r) => {
    const attrs = `classname="scenarios.${esc(path.basename(r.file).replace(/\.ya?ml$/, ""))}" name="${esc(r.name)}${r.mutants?.length ? ` [mutants: ${esc(r.mutants.join(","))}]` : ""}" file="${esc(r.file)}" time="${(r.ms / 1000).toFixed(3)}"`;
    const props = r.regression ? `\n      <properties><property name="regression" value="${esc(r.regression.issue)}"/></properties>` : "";
    let body = "";
    if (r.verdict === "skip") body = `\n      <skipped message="${esc(r.reason ?? "")}"/>`;
    if (r.verdict === "fail") {
      const failed = r.checks.filter((c) => !c.ok);
      const detail = failed.map((c) => `${c.name}:\n  ${c.problems.join("\n  ")}${brokenRules(c).map((r) => `\n  rule: ${r}`).join("")}`).join("\n");
      body = `\n      <failure message="${esc(r.reason ?? "failed")}" type="verdict">${esc(detail)}</failure>`;
    }
    const out = r.history.length ? `\n      <system-out>${esc(formatHistory(r.history))}</system-out>` : "";
    return `    <testcase ${attrs}>${props}${body}${out}\n    </testcase>`;
  });
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<testsuites name="${esc(suite)}" tests="${s.total}" failures="${s.failed}" skipped="${s.skipped}" time="${(s.ms / 1000).toFixed(3)}">`,
    `  <testsuite name="${esc(suite)}" tests="${s.total}" failures="${s.failed}" skipped="${s.skipped}" errors="0" time="${(s.ms / 1000).toFixed(3)}">`,
    ...cases,
    `  </testsuite>`,
    `</testsuites>`,
    "",
  ].join("\n");
}

export function writeReport(file: string, text: string): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, text);
}
