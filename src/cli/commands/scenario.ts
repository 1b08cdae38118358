// `shimlab scenario`: validate, list and run the YAML fault scenarios.
import path from "node:path";
import { loadScenarioFile, scenarioFiles, ScenarioError } from "../../scenarios/load";
import { runScenario } from "../../scenarios/runner";
import { MUTANTS, mutantOptions } from "../../scenarios/mutants";
import { brokenRules, jsonReport, junitReport, summarize, writeReport } from "../../scenarios/report";
import { formatHistory } from "../../scenarios/history";
import { contractDir, contractHtmlDir, packageRoot } from "../../contract/cite";
import type { Scenario, ScenarioResult } from "../../scenarios/types";

const HELP = `usage: shimlab scenario <run|validate|list> <file|dir>... [options]

  run        run scenarios against shimlab with the mock agent (root, runc, busybox-static)
  validate   check scenario files against the schema
  list       name each scenario and the bug it reproduces

options (run):
  --json FILE      write a JSON report (results, histories, events)
  --junit FILE     write a JUnit XML report
  --mutant NAME    run with shimlab given a known bug (repeatable): ${Object.keys(MUTANTS).join(", ")}
  --history        print each scenario's operation history
  --quiet          only the verdicts

A failing verdict names each broken rule as id (docs/contract/<page>.md#id), a path
relative to shimlab's directory: here ${contractDir()}.
`;

interface Opts {
  paths: string[];
  json?: string;
  junit?: string;
  mutants: string[];
  history: boolean;
  quiet: boolean;
}

function parse(argv: string[]): Opts {
  const o: Opts = { paths: [], mutants: [], history: false, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === "--json") o.json = v();
    else if (a === "--junit") o.junit = v();
    else if (a === "--mutant") o.mutants.push(v());
    else if (a === "--history") o.history = true;
    else if (a === "--quiet" || a === "-q") o.quiet = true;
    else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else o.paths.push(a);
  }
  return o;
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

export async function scenarioCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "-h" || sub === "--help") {
    process.stdout.write(HELP);
    return sub ? 0 : 2;
  }
  let o: Opts;
  try {
    o = parse(rest);
    mutantOptions(o.mutants);
  } catch (e) {
    process.stderr.write(`shimlab scenario: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
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
  if (sub !== "run") {
    process.stderr.write(`shimlab scenario: unknown subcommand ${JSON.stringify(sub)}\n\n${HELP}`);
    return 2;
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
