// The conformance suite's outputs and comparison, on made-up reports.
import { describe, it, expect } from "vitest";
import { compareReports, formatComparison } from "../../src/harness/conformance/compare";
import { toJson, toJunit, summary, progressLine } from "../../src/harness/conformance/report";
import { ALL_CHECKS } from "../../src/harness/conformance/checks";
import { DIFFERENCES, PROFILES, guessProfile } from "../../src/harness/conformance/profiles";
import type { CheckResult, SuiteReport } from "../../src/harness/conformance/types";

function check(name: string, status: CheckResult["status"], observations: CheckResult["observations"] = [], detail = ""): CheckResult {
  return { name, group: "g", rule: "kill.unknown-container", also: name === "b" ? ["errors.tolerated"] : [], status, detail, ms: 12, observations };
}

function report(shim: string, checks: CheckResult[]): SuiteReport {
  const counts = { pass: 0, fail: 0, skip: 0 };
  for (const c of checks) counts[c.status]++;
  return { shim, profile: "p", contract: "c", startedAt: "2026-11-25T00:00:00.000Z", ms: 1500, checks, counts, leftovers: [] };
}

describe("conformance reports", () => {
  it("JSON has the shim and name/rule/status/detail per check, each rule with its entry in docs/contract", () => {
    const j = JSON.parse(toJson(report("/bin/x", [check("a", "pass"), check("b", "fail", [], "want X, got Y")])));
    expect(j.shim).toBe("/bin/x");
    expect(j.checks.map((c: CheckResult & { ruleDoc: string }) => [c.name, c.rule, c.ruleDoc, c.status, c.detail])).toEqual([
      ["a", "kill.unknown-container", "docs/contract/task-api.md#kill.unknown-container", "pass", ""],
      ["b", "kill.unknown-container", "docs/contract/task-api.md#kill.unknown-container", "fail", "want X, got Y"],
    ]);
    expect(j.checks[1].also).toEqual([{ rule: "errors.tolerated", ruleDoc: "docs/contract/wire.md#errors.tolerated" }]);
    expect(j.checks[0].ruleText).toMatch(/^`Kill` of a container id the shim does not hold answers `NotFound`/);
  });

  it("JUnit escapes details and counts failures and skips", () => {
    const x = toJunit(report("/bin/<x>", [check("a", "pass"), check("b", "fail", [], 'got "<&>"'), check("c", "skip", [], "profile says so")]));
    expect(x).toContain('tests="3" failures="1" skipped="1"');
    expect(x).toContain('<failure message="got &quot;&lt;&amp;&gt;&quot;">rule: kill.unknown-container (docs/contract/task-api.md#kill.unknown-container)\n');
    expect(x).toContain('<property name="rule" value="kill.unknown-container (docs/contract/task-api.md#kill.unknown-container)"/><property name="also" value="errors.tolerated (docs/contract/wire.md#errors.tolerated)"/>');
    expect(x).toContain('<skipped message="profile says so"/>');
    expect(x).toContain("/bin/&lt;x&gt;");
    expect(x).not.toMatch(/<x>|"<&>"/);
  });

  it("the summary lists failures with their rule; progress lines number the checks", () => {
    const s = summary(report("/bin/x", [check("a", "pass"), check("b", "fail", [], "boom")]));
    expect(s).toMatch(/1 passed, 1 failed, 0 skipped of 2 checks in 1\.5 s/);
    expect(s).toMatch(/FAIL b: boom\n\s+rule: kill\.unknown-container \(docs\/contract\/task-api\.md#kill\.unknown-container\)\n\s+also: errors\.tolerated \(docs\/contract\/wire\.md#errors\.tolerated\)/);
    expect(progressLine(check("a", "pass"), 4, 70)).toBe("[ 5/70] ok   g/a (12 ms)\n");
    expect(progressLine(check("b", "fail", [], "boom"), 5, 70)).toBe("[ 6/70] FAIL g/b (12 ms)\n        boom\n        rule: kill.unknown-container (docs/contract/task-api.md#kill.unknown-container)\n");
  });
});

describe("conformance comparison", () => {
  it("marks differences documented only when a check said so or an equivalence applies", () => {
    const a = report("A", [
      check("x", "pass", [{ key: "Delete running", value: "Unknown" }]),
      check("y", "pass", [{ key: "Kill unknown", value: "NotFound" }]),
      check("z", "pass", [{ key: "events of task 0", value: "/tasks/create /tasks/exit /tasks/delete" }]),
      check("w", "pass", [{ key: "events of task 0", value: "/tasks/create /tasks/start /tasks/exit /tasks/delete" }]),
    ]);
    const b = report("B", [
      check("x", "pass", [{ key: "Delete running", value: "FailedPrecondition", documented: "illegal-state-code" }]),
      check("y", "fail", [{ key: "Kill unknown", value: "OK" }], "want NotFound, got OK"),
      check("z", "pass", [{ key: "events of task 0", value: "/tasks/create /tasks/delete" }]),
      check("w", "pass", [{ key: "events of task 0", value: "/tasks/create /tasks/start /tasks/delete" }]),
    ]);
    const c = compareReports(a, b);
    const brief = c.differences.map((d) => [d.check, d.key, d.documented]);
    expect(brief).toEqual([
      ["x", "Delete running", "illegal-state-code"],
      ["y", "status", null],
      ["y", "Kill unknown", null],
      ["z", "events of task 0", "never-started-exit"],
      // a started task that loses its exit is not covered by that equivalence
      ["w", "events of task 0", null],
    ]);
    expect(c.undocumented).toBe(3);
    const text = formatComparison(c, a, b);
    expect(text).toMatch(/y:\n {2}status\n {4}A: pass\n {4}B: fail: want NotFound, got OK\n {4}UNDOCUMENTED difference/);
    expect(text).toMatch(/5 differences, 2 documented, 3 undocumented/);
  });

  it("every difference a check can name is documented; profiles are picked by name", () => {
    for (const k of ["pids", "illegal-state-code", "checkpoint", "never-started-exit", "sandbox-api"]) expect(DIFFERENCES[k]).toBeTruthy();
    expect(guessProfile("/usr/bin/containerd-shim-runc-v2")).toBe(PROFILES.runc);
    expect(guessProfile("/x/bin/containerd-shim-shimlab-v2")).toBe(PROFILES.shimlab);
    expect(ALL_CHECKS.length).toBeGreaterThanOrEqual(40);
    expect(new Set(ALL_CHECKS.map((c) => c.group))).toEqual(new Set(["binary", "lifecycle", "kill", "exec", "stdio", "tty", "pause", "pids", "events", "api", "sandbox"]));
  });
});
