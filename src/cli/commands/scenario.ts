// `shimlab scenario`: validate, list and run the YAML fault scenarios.
import path from "node:path";
import { loadScenarioFile, scenarioFiles, ScenarioError } from "../../scenarios/load";
import { runScenario } from "../../scenarios/runner";
import { mutantOptions } from "../../scenarios/mutants";
import { brokenRules, jsonReport, junitReport, summarize, writeReport } from "../../scenarios/report";
import { formatHistory } from "../../scenarios/history";
import { contractHtmlDir, packageRoot } from "../../contract/cite";
import type { Scenario, ScenarioResult } from "../../scenarios/types";
import { bool, dispatch, list, str, UsageError } from "../args";

interface Opts {
  paths: string[];
  json?: string;
  junit?: string;
  mutants: string[];
  history: boolean;
  quiet: boolean;
}

function load(paths: string[]): { scenarios: Scenario[]; errors: ScenarioError[] } {
  const scenarios: Scenario[] = [];
  const errors: ScenarioError[] = [];
  for (const f of scenarioFiles(paths)) {
    try {
      scenarios.push(loadScenarioFile(f));
    } catch (e) {
      if (e instanceof ScenarioError) errors.push(e);
      else throw e;
    }
  }
  return { scenarios, errors };
}

export function scenarioCommand(argv: string[]): Promise<number> {
  return dispatch(["scenario"], argv, (sub, p) => {
    const mutants = list(p, "mutant");
    try {
      mutantOptions(mutants);
    } catch (e) {
      throw new UsageError((e as Error).message, ["scenario", sub]);
    }
    return scenario(sub, { paths: p.positionals, json: str(p, "json"), junit: str(p, "junit"), mutants, history: bool(p, "history"), quiet: bool(p, "quiet") });
  });
}

async function scenario(sub: string, o: Opts): Promise<number> {
  if (!o.paths.length) o.paths.push(path.resolve(__dirname, "..", "..", "..", "scenarios"));
  const { scenarios, errors } = load(o.paths);
  for (const e of errors) process.stderr.write(`${e.problems.join("\n")}\n`);
  if (sub === "validate") {
    process.stdout.write(`${scenarios.length} valid, ${errors.length} invalid\n`);
    return errors.length ? 1 : 0;
  }
  if (sub === "list") {
    for (const s of scenarios) process.stdout.write(`${s.name.padEnd(34)} ${s.regression ? s.regression.issue.padEnd(38) : "".padEnd(38)} ${s.description.split("\n")[0]}\n`);
    return errors.length ? 1 : 0;
  }
  if (errors.length) return 1;
  const results: ScenarioResult[] = [];
  const say = (l: string) => process.stderr.write(l + "\n");
  for (const [i, s] of scenarios.entries()) {
    say(`[${i + 1}/${scenarios.length}] ${s.name}${s.regression ? ` (${s.regression.issue})` : ""}${o.mutants.length ? ` with mutants ${o.mutants.join(",")}` : ""}`);
    const r = await runScenario(s, { ...mutantOptions(o.mutants), mutantNames: o.mutants.length ? o.mutants : undefined, onProgress: o.quiet ? undefined : say });
    results.push(r);
    say(`  ${r.verdict.toUpperCase()} ${s.name} in ${r.ms} ms${r.reason ? `: ${r.reason}` : ""}`);
    // Each broken contract rule once, with where it is written.
    for (const cite of new Set(r.checks.filter((c) => !c.ok).flatMap(brokenRules))) say(`    rule: ${cite}`);
    if (o.history && r.history.length) say(formatHistory(r.history));
  }
  const sum = summarize(results);
  // The rule paths above are relative to shimlab's directory, which a reader of CI output may not know.
  if (sum.failed) say(`(rule paths are under ${packageRoot()}; HTML form: ${contractHtmlDir()}/README.html)`);
  process.stdout.write(`${sum.passed} passed, ${sum.failed} failed, ${sum.skipped} skipped (${(sum.ms / 1000).toFixed(1)} s)\n`);
  if (o.json) writeReport(o.json, jsonReport(results));
  if (o.junit) writeReport(o.junit, junitReport(results));
  return sum.failed ? 1 : 0;
}
