// The contract lives once, as data (src/contract/rules/), and everything that
// prints a rule follows from it: the docs' tables are regenerated and compared,
// every check's citation must land on an entry of the docs, every rule must be
// held by something (or be prose or an ordering rule on purpose), links in the
// docs must resolve, and no report may point outside the repository.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { RULES, ORDERING_RULES, rule, isRuleId } from "../../src/contract/rules";
import { SECTIONS, PAGES } from "../../src/contract/sections";
import { regenerate, sectionsIn } from "../../src/contract/generate";
import { citation, ruleDoc, ruleHtmlUrl, packageRoot } from "../../src/contract/cite";
import { checkOrdering, type TracedEvent } from "../../src/contract/ordering-check";
import { ALL_CHECKS } from "../../src/harness/conformance/checks";
import { CHECK_RULES, runChecks } from "../../src/scenarios/checks";
import { toJson, toJunit, summary, progressLine } from "../../src/harness/conformance/report";
import { jsonReport, junitReport } from "../../src/scenarios/report";
import { History } from "../../src/scenarios/history";
import { loadScenarioFile, parseScenario, scenarioFiles } from "../../src/scenarios/load";
import type { CheckResult, SuiteReport } from "../../src/harness/conformance/types";
import type { ScenarioResult, Step } from "../../src/scenarios/types";
import { OUTSIDE } from "../helpers/outside";

const ROOT = path.resolve(__dirname, "..", "..");
const DOCS = path.join(ROOT, "docs");
const CONTRACT = path.join(DOCS, "contract");

function mdFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? mdFiles(path.join(dir, e.name)) : e.name.endsWith(".md") ? [path.join(dir, e.name)] : []));
}

/** GitHub's heading anchors (what scripts/build-docs.mjs gives the HTML headings too). */
const slug = (h: string) =>
  h
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .trim()
    .replace(/\s/g, "-");

/** The anchors a Markdown page offers: explicit ids, and its headings. */
function anchors(file: string): Set<string> {
  const text = fs.readFileSync(file, "utf8");
  const ids = [...text.matchAll(/<a id="([^"]+)"><\/a>/g)].map((m) => m[1]);
  const heads = [...text.replace(/```[\s\S]*?```/g, "").matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]));
  return new Set([...ids, ...heads]);
}

/** Every `docs/contract/<page>.md#<id>` a text names must be a real entry. */
function citationsResolve(text: string): string[] {
  const bad: string[] = [];
  for (const m of text.matchAll(/docs\/contract\/([a-z-]+)\.md#([a-z0-9.-]+)/g)) {
    const file = path.join(CONTRACT, `${m[1]}.md`);
    if (!fs.existsSync(file) || !anchors(file).has(m[2])) bad.push(m[0]);
  }
  return bad;
}

/** The rules the shipped scenarios' steps name in their expectations. */
function scenarioStepRules(): string[] {
  const named = (steps: Step[]): string[] => steps.flatMap((s) => (s.kind === "parallel" ? s.branches.flatMap(named) : s.expect?.rule ? [s.expect.rule] : []));
  return scenarioFiles([path.join(ROOT, "scenarios")]).flatMap((f) => named(loadScenarioFile(f).steps));
}

describe("the contract's rules", () => {
  it("have unique ids of the form <area>.<name>, each in a known section, with its page in docs/contract", () => {
    expect(new Set(RULES.map((r) => r.id)).size).toBe(RULES.length);
    for (const r of RULES) {
      expect(r.id).toMatch(/^[a-z0-9-]+\.[a-z0-9-]+$/);
      expect(SECTIONS.map((s) => s.id)).toContain(r.section);
      expect(fs.existsSync(path.join(CONTRACT, `${r.page}.md`)), r.page).toBe(true);
      expect(r.text.length).toBeGreaterThan(20);
      if (r.kind === "ordering") expect(r.topics?.length, r.id).toBeGreaterThan(0);
    }
    expect(() => rule("kill.no-such-rule")).toThrow(/no contract rule/);
    expect(isRuleId("kill.unknown-container")).toBe(true);
  });

  it("are printed by the docs exactly as generated (npm run docs:contract rewrites them)", () => {
    for (const f of mdFiles(DOCS)) {
      const text = fs.readFileSync(f, "utf8");
      expect(regenerate(text) === text, `${path.relative(ROOT, f)} is out of date: run npm run docs:contract`).toBe(true);
    }
  });

  it("have each section printed once, on its own page, and one anchor per rule, on the rule's page", () => {
    const printed = new Map<string, string>();
    for (const f of mdFiles(CONTRACT)) for (const s of sectionsIn(fs.readFileSync(f, "utf8"))) {
      expect(printed.has(s), `section ${s} printed twice`).toBe(false);
      printed.set(s, path.basename(f, ".md"));
    }
    for (const s of SECTIONS) expect(printed.get(s.id), s.id).toBe(s.page);
    const all = mdFiles(CONTRACT).flatMap((f) => [...fs.readFileSync(f, "utf8").matchAll(/<a id="([^"]+)"><\/a>`([^`]+)`/g)].map((m) => ({ id: m[1], shown: m[2], page: path.basename(f, ".md") })));
    for (const r of RULES) {
      const here = all.filter((a) => a.id === r.id);
      expect(here, r.id).toEqual([{ id: r.id, shown: r.id, page: r.page }]);
    }
    expect(Object.keys(PAGES).sort()).toEqual(mdFiles(CONTRACT).map((f) => path.basename(f, ".md")).sort());
  });

  it("are what every conformance check cites, and the docs have each one cited", () => {
    for (const c of ALL_CHECKS) {
      for (const id of [c.rule, ...(c.also ?? [])]) {
        expect(isRuleId(id), `${c.name} cites ${id}`).toBe(true);
        expect(citationsResolve(ruleDoc(id)), `${c.name} → ${ruleDoc(id)}`).toEqual([]);
        expect(rule(id).kind, `${c.name} cites ${id}, a prose rule: make it checked`).not.toBe("prose");
      }
    }
  });

  it("are each held by something: a conformance or scenario check, a scenario's step, the ordering checker, or prose on purpose", () => {
    const cited = new Set<string>([...ALL_CHECKS.flatMap((c) => [c.rule, ...(c.also ?? [])]), ...Object.values(CHECK_RULES).flat(), ...scenarioStepRules()]);
    const orphans = RULES.filter((r) => r.kind === "checked" && !cited.has(r.id)).map((r) => r.id);
    expect(orphans, "checked rules no check cites").toEqual([]);
    // Prose is a claim that nothing checks the rule: a rule some check cites must say "checked".
    const misfiled = RULES.filter((r) => r.kind === "prose" && cited.has(r.id)).map((r) => r.id);
    expect(misfiled).toEqual([]);
    for (const id of Object.values(CHECK_RULES).flat()) expect(isRuleId(id), id).toBe(true);
  });

  it("has an ordering checker that can break every ordering rule, and breaks nothing else", () => {
    const ev = (topics: [string, Record<string, unknown>][]): TracedEvent[] => topics.map(([topic, event], i) => ({ i, t: i * 10, topic, event }));
    const c = { containerId: "c" };
    const found = new Set<string>();
    const add = (events: TracedEvent[], replies: Parameters<typeof checkOrdering>[1] = []) => checkOrdering(events, replies).forEach((v) => found.add(v.rule));
    add(ev([["/tasks/start", c]]));
    add(ev([["/tasks/create", c], ["/tasks/exit", { ...c, id: "c" }]]));
    add(ev([["/tasks/create", c], ["/tasks/start", c], ["/tasks/delete", c]]));
    add(ev([["/tasks/exec-added", { ...c, execId: "e" }]]));
    add(ev([["/tasks/create", c], ["/tasks/exec-started", { ...c, execId: "e" }]]));
    add(ev([["/tasks/create", c], ["/tasks/exit", { ...c, id: "e" }]]));
    add(ev([["/tasks/create", c], ["/tasks/start", c], ["/tasks/exec-added", { ...c, execId: "e" }], ["/tasks/exec-started", { ...c, execId: "e" }], ["/tasks/exit", { ...c, id: "c" }], ["/tasks/oom", c], ["/tasks/exit", { ...c, id: "c" }]]));
    add(ev([["/tasks/create", c], ["/tasks/start", c], ["/tasks/exit", { ...c, id: "c" }], ["/tasks/exec-added", { ...c, execId: "x" }], ["/tasks/exec-started", { ...c, execId: "x" }]]));
    add(ev([["/tasks/create", c]]).map((e) => ({ ...e, t: 50 })), [{ i: 9, t: 40, method: "Create", req: { id: "c" } }]);
    expect([...found].sort()).toEqual(ORDERING_RULES.map((r) => r.id).sort());
  });
});

describe("links in the docs", () => {
  it("resolve: every relative link names a file that exists, and an anchor that file has", () => {
    const bad: string[] = [];
    for (const f of [...mdFiles(DOCS), path.join(ROOT, "README.md"), path.join(ROOT, "CONTRIBUTING.md"), path.join(ROOT, "scenarios", "README.md")]) {
      const text = fs.readFileSync(f, "utf8").replace(/```[\s\S]*?```/g, "");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const href = m[1];
        if (/^[a-z]+:/.test(href)) continue;
        const [target, hash] = href.split("#");
        const file = target ? path.resolve(path.dirname(f), target) : f;
        if (!fs.existsSync(file)) bad.push(`${path.relative(ROOT, f)}: ${href} (no such file)`);
        else if (hash && file.endsWith(".md") && !anchors(file).has(hash)) bad.push(`${path.relative(ROOT, f)}: ${href} (no such anchor)`);
      }
    }
    expect(bad).toEqual([]);
  });
});


describe("citations point into the repository", () => {
  it("in the sources, docs, scenarios and benchmarks", () => {
    const roots = ["src", "docs", "scenarios", "bench", "scripts", "deploy", "proto", "kernel", ".ci"].map((d) => path.join(ROOT, d));
    const files = [path.join(ROOT, "README.md"), path.join(ROOT, "CONTRIBUTING.md")];
    const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === "gen" ? [] : walk(path.join(d, e.name))) : [path.join(d, e.name)]));
    // Text the repository ships: sources, docs, protos, the kernel config, CI's script (no extension).
    for (const r of roots) files.push(...walk(r).filter((f) => /\.(ts|mjs|js|md|yaml|sh|c|h|proto|config)$/.test(f) || path.basename(path.dirname(f)) === ".ci"));
    files.push(path.join(ROOT, "native", "shimlab.c"), path.join(ROOT, "package.json"));
    const hits = files.filter((f) => OUTSIDE.test(fs.readFileSync(f, "utf8"))).map((f) => path.relative(ROOT, f));
    expect(files.length).toBeGreaterThan(200); // the walk found the tree, not an empty list
    expect(hits).toEqual([]);
  });

  it("in the conformance reports (JSON, JUnit, summary, progress), every check failing", () => {
    const checks: CheckResult[] = ALL_CHECKS.map((c) => ({ name: c.name, group: c.group, rule: c.rule, also: c.also ?? [], status: "fail", detail: "x", ms: 1, observations: [] }));
    const rep: SuiteReport = { shim: "/bin/shim", profile: "p", contract: "docs/contract/README.md", startedAt: "t", ms: 1, checks, counts: { pass: 0, fail: checks.length, skip: 0 }, leftovers: [] };
    const outputs = [toJson(rep), toJunit(rep), summary(rep), ...checks.map((c, i) => progressLine(c, i, checks.length))].join("\n");
    expect(outputs).not.toMatch(OUTSIDE);
    expect(citationsResolve(outputs)).toEqual([]);
    // Every check's rule is named with its entry, in each form.
    for (const c of ALL_CHECKS) {
      expect(toJson(rep)).toContain(`"ruleDoc": "${ruleDoc(c.rule)}"`);
      expect(toJunit(rep)).toContain(citation(c.rule));
      expect(summary(rep)).toContain(`rule: ${citation(c.rule)}`);
    }
  });

  it("in the scenario reports (JSON, JUnit), every check failing", () => {
    const scenario = parseScenario("name: s\ndescription: d\ncontainers:\n  c:\n    args: [/bin/true]\nsteps:\n  - { do: kill, container: c, expect: { error: NotFound, rule: kill.unknown-container } }\n", "s.yaml");
    const h = new History(() => 0);
    const w = h.invoke("c0", "wait", { container: "c" });
    h.complete(w, "ok", { value: { exitStatus: 1 } });
    const st = h.invoke("c0", "state", { container: "c" });
    h.complete(st, "ok", { value: { status: "RUNNING", exitStatus: 0 } });
    h.invoke("c1", "kill", { container: "c" });
    const e = (seq: number, topic: string, event: Record<string, unknown>) => ({ seq, topic, event, namespace: "n", typeUrl: "", timestamp: 0, receivedAt: 0, time: seq });
    const events = [e(0, "/tasks/start", { containerId: "c" }), e(1, "/tasks/exit", { containerId: "c", id: "c", exitStatus: 2 }), e(2, "/tasks/exit", { containerId: "c", id: "c", exitStatus: 2 })];
    const checks = runChecks({ scenario: { ...scenario, expect: { events: { c: ["/tasks/oom"] } } }, history: h, events, expectationProblems: ["steps[0]: missed"], expectationRules: ["kill.unknown-container"], aborted: null, leaks: ["process 1"], crash: null });
    expect(checks.filter((c) => c.ok).map((c) => c.name)).toEqual([]);
    const results: ScenarioResult[] = [{ name: "s", file: "scenarios/s.yaml", verdict: "fail", reason: "r", ms: 1, checks, history: h.ops, events: [], faults: [] }];
    const outputs = jsonReport(results) + junitReport(results);
    expect(outputs).not.toMatch(OUTSIDE);
    expect(citationsResolve(outputs)).toEqual([]);
    for (const id of ["kill.unknown-container", "wire.every-call-answered", "events.start-after-create", "events.once", "exit.consistent", "state.stopped-after-wait", "binary.delete-cleans-up"]) expect(junitReport(results)).toContain(`rule: ${citation(id)}`);
  });

  it("and the shipped scenarios name only rules that exist", () => {
    const skipped = scenarioFiles([path.join(ROOT, "scenarios")]).flatMap((f) => Object.keys(loadScenarioFile(f).expect.skip_checks ?? {}).filter((k) => k.includes(".")));
    const ids = [...scenarioStepRules(), ...skipped];
    for (const id of ids) expect(isRuleId(id), id).toBe(true);
    expect(ids.length).toBeGreaterThan(0);
  });

  it("and a trace page's links go to the HTML form, one anchor per rule id", () => {
    expect(ruleHtmlUrl("events.exit-after-start")).toBe(`file://${packageRoot()}/dist/docs/contract/events.html#events.exit-after-start`);
    expect(ruleHtmlUrl("kill.unknown-container", "/x/y")).toBe("file:///x/y/task-api.html#kill.unknown-container");
  });
});
