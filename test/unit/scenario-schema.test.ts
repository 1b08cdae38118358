// The scenario format: every shipped scenario validates, and a malformed file
// gets an error naming the file, the line, the path inside it and what was
// expected. Also the checker and the reports, on hand-made histories.
import { describe, it, expect } from "vitest";
import path from "node:path";
import { parseScenario, loadScenarioFile, scenarioFiles, ScenarioError } from "../../src/scenarios/load";
import { runChecks } from "../../src/scenarios/checks";
import { History } from "../../src/scenarios/history";
import { junitReport, jsonReport } from "../../src/scenarios/report";
import type { Scenario, ScenarioResult } from "../../src/scenarios/types";

const DIR = path.resolve(__dirname, "..", "..", "scenarios");

const MINIMAL = `name: tiny
description: a minimal scenario
containers:
  job:
    args: [/bin/true]
steps:
  - do: create
    container: job
`;

function problems(text: string, file = "bad.yaml"): string[] {
  try {
    parseScenario(text, file);
  } catch (e) {
    if (e instanceof ScenarioError) return e.problems;
    throw e;
  }
  return [];
}

describe("shipped scenarios", () => {
  const files = scenarioFiles([DIR]);

  it("has at least 25, all valid, with unique names", () => {
    expect(files.length).toBeGreaterThanOrEqual(25);
    const names = files.map((f) => loadScenarioFile(f).name);
    expect(new Set(names).size).toBe(names.length);
  });

  it("names the real bugs they reproduce", () => {
    const issues = files.map((f) => loadScenarioFile(f).regression?.issue).filter(Boolean);
    for (const want of [
      "containerd/containerd#7496",
      "containerd/containerd#6771",
      "containerd/containerd#3177",
      "containerd/containerd#9719",
      "containerd/containerd#2439",
      "containerd/containerd#13848",
      "containerd/ttrpc#72",
      "containerd/ttrpc#171",
      "kata-containers/runtime#1600",
      "kata-containers/runtime#1929",
      "kata-containers/kata-containers#12671",
    ])
      expect(issues).toContain(want);
  });
});

describe("malformed scenario files", () => {
  it("accepts the minimal scenario", () => {
    expect(problems(MINIMAL)).toEqual([]);
  });

  it("reports bad YAML with its line", () => {
    const p = problems("name: x\nsteps: [\n  - do: create\n", "broken.yaml");
    expect(p[0]).toMatch(/^broken\.yaml:\d+:\d+: not valid YAML/);
  });

  it("names a missing required key", () => {
    const p = problems(MINIMAL.replace("description: a minimal scenario\n", ""), "s.yaml");
    expect(p).toEqual(['s.yaml:1:1: (top level): missing required key "description"']);
  });

  it("points at an unknown key, suggesting the near one", () => {
    const p = problems(MINIMAL.replace("    container: job", "    contianer: job"), "s.yaml");
    expect(p).toContain('s.yaml:7:5: steps[0]: missing required key "container"');
    expect(p.join("\n")).toMatch(/^s\.yaml:8:5: steps\[0\]\.contianer: unknown key "contianer" \(did you mean "container"\?\)/m);
  });

  it("says which values an enum allows", () => {
    const p = problems(MINIMAL.replace("do: create", "do: strat"), "s.yaml");
    expect(p[0]).toMatch(/^s\.yaml:7:5: steps\[0\]: do: expected one of create, start, exec/);
    expect(p[0]).toContain('got "strat"');
  });

  it("says what type was expected", () => {
    const p = problems(MINIMAL.replace("args: [/bin/true]", "args: /bin/true"), "s.yaml");
    expect(p).toEqual(['s.yaml:5:11: containers.job.args: expected a list, got string "/bin/true"']);
    const q = problems(MINIMAL + "    timeout_ms: soon\n", "s.yaml");
    expect(q[0]).toMatch(/^s\.yaml:9:17: steps\[0\]\.timeout_ms: expected an integer, got string "soon"/);
  });

  it("checks names that must exist: containers, faults, step ids", () => {
    const p = problems(MINIMAL + "  - do: kill\n    container: nobody\n  - do: inject\n    fault: ghost\n", "s.yaml");
    expect(p.join("\n")).toMatch(/^s\.yaml:10:16: steps\[1\]\.container: no container "nobody" \(containers: job\)$/m);
    expect(p.join("\n")).toMatch(/^s\.yaml:12:12: steps\[2\]\.fault: no fault named "ghost" \(faults: none\)$/m);
  });

  it("parses failpoints with containerd's grammar and toxics with toxiproxy's attributes", () => {
    const f = (fault: string) => problems(MINIMAL + `faults:\n${fault}`, "s.yaml");
    expect(f("  - { name: fp, scope: task-rpc, method: Start, failpoint: '1*explode' }\n")[0]).toMatch(/^s\.yaml:10:\d+: faults\[0\]\.failpoint: failpoint: invalid type at "explode"/);
    expect(f("  - { name: fp, scope: task-rpc, method: Begin, failpoint: '1*off' }\n")[0]).toMatch(/faults\[0\]\.method: expected one of State, Create, Start/);
    expect(f("  - { name: t, scope: containerd-link, toxic: { type: latency } }\n")[0]).toMatch(/faults\[0\]\.toxic: missing required key "latency"/);
    expect(f("  - { name: t, scope: containerd-link, toxic: { type: lag } }\n")[0]).toMatch(/faults\[0\]\.toxic: type: expected one of latency, bandwidth/);
    expect(f("  - { name: t, scope: wire, toxic: {} }\n")[0]).toMatch(/scope: expected one of task-rpc, agent-rpc, events, forward/);
  });

  it("runs each fault kind's own checks, at a path inside the fault", () => {
    const f = (fault: string) => problems(MINIMAL + `faults:\n${fault}`, "s.yaml");
    expect(f("  - { name: e, scope: events, action: delay }\n")).toEqual(["s.yaml:10:5: faults[0]: an events delay needs ms"]);
    expect(f("  - { name: e, scope: events, action: reorder }\n")).toEqual(["s.yaml:10:5: faults[0]: an events reorder needs window_size (>= 2)"]);
    expect(f("  - { name: w, scope: forward, action: delay }\n")).toEqual(["s.yaml:10:5: faults[0]: a forward delay needs ms"]);
    expect(f("  - { name: k, scope: process, target: 'init:nobody', action: kill }\n")).toEqual(['s.yaml:10:40: faults[0].target: no container "nobody"']);
    expect(f("  - { name: fp, scope: task-rpc, method: Start, failpoint: '1*off' }\n  - { name: fp, scope: forward, action: unavailable }\n")).toEqual(['s.yaml:11:13: faults[1].name: fault name "fp" is used twice']);
  });

  it("refuses inject and heal of a fault fixed at shim start, and a link fault on a Sandbox API pod", () => {
    const p = problems(MINIMAL + "  - { do: inject, fault: fp }\nfaults:\n  - { name: fp, scope: agent-rpc, method: CreateContainer, failpoint: '1*off' }\n", "s.yaml");
    expect(p).toEqual(["s.yaml:9:26: steps[1].fault: fault fp (scope agent-rpc) is fixed when the shim starts; it cannot be injected or healed"]);
    const q = problems(MINIMAL.replace("containers:", "sandbox_api: true\ncontainers:") + "faults:\n  - { name: l, scope: containerd-link, toxic: { type: timeout, timeout: 0 } }\n", "s.yaml");
    expect(q).toContain("s.yaml:11:23: faults[0].scope: scope containerd-link is not carried to a Sandbox API pod's shim yet");
  });

  it("tells a step with neither do nor parallel what it needs, and nothing else", () => {
    expect(problems(MINIMAL + "  - { container: job }\n", "s.yaml")).toEqual([expect.stringMatching(/^s\.yaml:9:5: steps\[1\]: a step needs "do" \(one of create, start, .*\) or "parallel"$/)]);
  });

  it("refuses a time window on a fault fixed at shim start", () => {
    const p = problems(MINIMAL + "faults:\n  - name: fp\n    scope: task-rpc\n    method: Start\n    failpoint: '1*off'\n    window: { at_ms: 10 }\n", "s.yaml");
    expect(p).toEqual(["s.yaml:14:13: faults[0].window: scope task-rpc is fixed when the shim starts; time it with counts instead"]);
  });

  it("checks parallel steps inside", () => {
    const p = problems(MINIMAL + "  - parallel:\n      - - { do: wait, container: job }\n      - - { do: wait, contianer: job }\n", "s.yaml");
    expect(p.join("\n")).toMatch(/^s\.yaml:11:\d+: steps\[1\]\.parallel\[1\]\[0\]\.contianer: unknown key/m);
  });

  it("allows only what ctr can do with the containerd driver", () => {
    const p = problems(MINIMAL.replace("containers:", "driver: containerd\ncontainers:") + "faults:\n  - { name: f, scope: forward, action: unavailable }\n", "s.yaml");
    expect(p.join("\n")).toMatch(/^s\.yaml:8:9: steps\[0\]\.do: create needs the emulator driver; with driver containerd \(where start is ctr run -d\) the steps are start, exec/m);
    expect(p.join("\n")).toMatch(/^s\.yaml:11:\d+: faults\[0\]\.scope: scope forward needs the emulator driver/m);
  });

  it("takes a contract rule id in an expectation, and names the near one for a typo", () => {
    expect(problems(MINIMAL.replace("container: job", "container: job\n    expect: { rule: create.state-created }"))).toEqual([]);
    const p = problems(MINIMAL.replace("container: job", "container: job\n    expect: { rule: create.state-creatd }"), "s.yaml");
    expect(p.join("\n")).toMatch(/^s\.yaml:\d+:\d+: steps\[0\]\.expect\.rule: expected a contract rule id \(see docs\/contract\/README\.md\), did you mean "create\.state-created"\?/m);
  });

  it("lets skip_checks name a check or an ordering rule, nothing else", () => {
    expect(problems(MINIMAL + "expect:\n  skip_checks: { events.delete-after-exit: why, exit-once: why }\n")).toEqual([]);
    const p = problems(MINIMAL + "expect:\n  skip_checks: { kill.unknown-container: why }\n", "s.yaml");
    expect(p.join("\n")).toMatch(/skip_checks\.kill\.unknown-container: key "kill\.unknown-container": expected a check \(expectations, .*\) or an ordering rule of event-order \(events\.start-after-create, /);
  });

  it("lists every problem at once", () => {
    const p = problems(MINIMAL.replace("do: create", "do: create\n    signal: nine\n    bogus: 1"), "s.yaml");
    expect(p.length).toBe(2);
  });
});

const scenario = (over: Partial<Scenario> = {}): Scenario => ({ ...parseScenario(MINIMAL, "t.yaml"), ...over });
type Ev = Parameters<typeof runChecks>[0]["events"][number];
const ev = (seq: number, topic: string, event: Record<string, unknown>): Ev => ({ seq, topic, event, namespace: "n", typeUrl: "", timestamp: 0, receivedAt: 0, time: seq });
const failing = (r: ReturnType<typeof runChecks>) => Object.fromEntries(r.filter((c) => !c.ok).map((c) => [c.name, c.problems]));

describe("the checker", () => {
  const base = { expectationProblems: [], aborted: null, leaks: [], crash: null };

  it("passes a clean history", () => {
    let t = 0;
    const h = new History(() => t++);
    const w = h.invoke("c0", "wait", { container: "c" });
    h.complete(w, "ok", { value: { exitStatus: 1 } });
    const s = h.invoke("c0", "state", { container: "c" });
    h.complete(s, "ok", { value: { status: "STOPPED", exitStatus: 1 } });
    const events = [ev(0, "/tasks/create", { containerId: "c" }), ev(1, "/tasks/start", { containerId: "c" }), ev(2, "/tasks/exit", { containerId: "c", id: "c", exitStatus: 1 }), ev(3, "/tasks/delete", { containerId: "c", exitStatus: 1 })];
    expect(failing(runChecks({ ...base, scenario: scenario(), history: h, events }))).toEqual({});
  });

  it("catches an exec exit after the init exit, a duplicate exit, a lost exit code and a premature Wait", () => {
    let t = 0;
    const h = new History(() => t++);
    const w = h.invoke("c0", "wait", { container: "c" });
    h.complete(w, "ok", { value: { exitStatus: 0 } });
    const s = h.invoke("c0", "state", { container: "c" });
    h.complete(s, "ok", { value: { status: "RUNNING", exitStatus: 0 } });
    const p = h.invoke("c1", "kill", { container: "c" });
    void p; // never completed
    const events = [
      ev(0, "/tasks/create", { containerId: "c" }),
      ev(1, "/tasks/start", { containerId: "c" }),
      ev(2, "/tasks/exec-added", { containerId: "c", execId: "e" }),
      ev(3, "/tasks/exec-started", { containerId: "c", execId: "e" }),
      ev(4, "/tasks/exit", { containerId: "c", id: "c", exitStatus: 137 }),
      ev(5, "/tasks/exit", { containerId: "c", id: "e", exitStatus: 137 }),
      ev(6, "/tasks/exit", { containerId: "c", id: "c", exitStatus: 137 }),
    ];
    const f = failing(runChecks({ ...base, scenario: scenario(), history: h, events }));
    // The trace's checker, citing its rules: the init's exit while an exec runs, and the init's exit twice.
    expect(f["event-order"]).toEqual(["events.init-exit-after-exec-exits: TaskExit for c's init while exec e has not exited (event #4)", "events.once: TaskExit for c published twice (event #6)"]);
    const order = runChecks({ ...base, scenario: scenario(), history: h, events }).find((c) => c.name === "event-order")!;
    expect(order.rules.filter((r) => r.broken).map((r) => r.rule)).toEqual(["events.init-exit-after-exec-exits", "events.once"]);
    expect(order.rules.find((r) => r.rule === "events.once")!.ruleDoc).toBe("docs/contract/events.md#events.once");
    expect(f["exit-once"]).toEqual(["c: 2 /tasks/exit events (a duplicate exit)"]);
    expect(f["exit-consistent"][0]).toMatch(/^c: exit status disagrees: Wait #1=0, \/tasks\/exit #4=137/);
    expect(f["wait-then-stopped"]).toEqual(["c: State #3 says RUNNING after Wait #1 had returned"]);
    expect(f.answered).toEqual(["#4 kill c (invoked at 4 ms) never completed"]);
  });

  it("catches a started exec whose exit never came", () => {
    const events = [
      ev(0, "/tasks/create", { containerId: "c" }),
      ev(1, "/tasks/start", { containerId: "c" }),
      ev(2, "/tasks/exec-added", { containerId: "c", execId: "e" }),
      ev(3, "/tasks/exec-started", { containerId: "c", execId: "e" }),
      ev(4, "/tasks/exit", { containerId: "c", id: "c", exitStatus: 137 }),
    ];
    const f = failing(runChecks({ ...base, scenario: scenario(), history: new History(() => 0), events }));
    expect(f["event-order"]).toEqual(["events.init-exit-after-exec-exits: TaskExit for c's init while exec e has not exited (event #4)"]);
  });

  it("skips one ordering rule by its id, and keeps the others", () => {
    const events = [ev(0, "/tasks/create", { containerId: "c" }), ev(1, "/tasks/start", { containerId: "c" }), ev(2, "/tasks/delete", { containerId: "c" }), ev(3, "/tasks/start", { containerId: "c" })];
    const run = (skip: Record<string, string>) => failing(runChecks({ ...base, scenario: scenario({ expect: { skip_checks: skip } }), history: new History(() => 0), events }))["event-order"];
    expect(run({})).toEqual(["events.delete-after-exit: TaskDelete for c before its TaskExit (event #2)", "events.once: TaskStart for c published twice (event #3)"]);
    expect(run({ "events.delete-after-exit": "no exit on purpose" })).toEqual(["events.once: TaskStart for c published twice (event #3)"]);
  });

  it("cites the rule a missed step expectation names", () => {
    const r = runChecks({ ...base, expectationProblems: ["steps[0]: kill c: expected error NotFound, got ok {} (rule kill.unknown-container (docs/contract/task-api.md#kill.unknown-container))"], expectationRules: ["kill.unknown-container"], scenario: scenario(), history: new History(() => 0), events: [] });
    const x = r.find((c) => c.name === "expectations")!;
    expect(x.ok).toBe(false);
    expect(x.rules).toEqual([]); // the minimal scenario's steps name no rule; what broke is still cited
    const named = scenario({ steps: [{ kind: "op", do: "kill", container: "c", expect: { error: "NotFound", rule: "kill.unknown-container" }, where: "steps[0]" }] });
    const y = runChecks({ ...base, expectationProblems: ["x"], expectationRules: ["kill.unknown-container"], scenario: named, history: new History(() => 0), events: [] }).find((c) => c.name === "expectations")!;
    expect(y.rules).toEqual([{ rule: "kill.unknown-container", ruleDoc: "docs/contract/task-api.md#kill.unknown-container", broken: true }]);
  });

  it("honours skipped checks and reports leaks", () => {
    const h = new History(() => 0);
    const r = runChecks({ ...base, leaks: ["process 1 x"], scenario: scenario({ expect: { skip_checks: { "no-leaks": "test" } } }), history: h, events: [] });
    expect(r.find((c) => c.name === "no-leaks")).toMatchObject({ name: "no-leaks", ok: true, skipped: "test", problems: [] });
    expect(failing(runChecks({ ...base, leaks: ["process 1 x"], scenario: scenario(), history: h, events: [] }))).toEqual({ "no-leaks": ["process 1 x"] });
  });
});

describe("reports", () => {
  const results: ScenarioResult[] = [
    { name: "a", file: "scenarios/a.yaml", verdict: "pass", ms: 1200, checks: [], history: [{ index: 0, process: "c0", type: "invoke", f: "create", time: 1 }], events: [], faults: [] },
    { name: "b<&>", file: "scenarios/b.yaml", regression: { issue: "x/y#1", title: "t" }, verdict: "fail", reason: "answered: late", ms: 10, checks: [{ name: "answered", ok: false, problems: ["#1 took 20 s"], rules: [{ rule: "wire.every-call-answered", ruleDoc: "docs/contract/wire.md#wire.every-call-answered", broken: true }] }], history: [], events: [], faults: [] },
    { name: "c", file: "scenarios/c.yaml", verdict: "skip", reason: "needs root", ms: 0, checks: [], history: [], events: [], faults: [] },
  ];

  it("writes JUnit XML with failures, skips and escaped names", () => {
    const x = junitReport(results);
    expect(x).toContain('<testsuite name="shimlab scenarios" tests="3" failures="1" skipped="1" errors="0" time="1.210">');
    expect(x).toContain('name="b&lt;&amp;&gt;"');
    expect(x).toContain('<failure message="answered: late" type="verdict">answered:\n  #1 took 20 s\n  rule: wire.every-call-answered (docs/contract/wire.md#wire.every-call-answered)</failure>');
    expect(x).toContain('<skipped message="needs root"/>');
    expect(x).toContain('<property name="regression" value="x/y#1"/>');
  });

  it("writes JSON with a summary", () => {
    const j = JSON.parse(jsonReport(results));
    expect(j.summary).toEqual({ total: 3, passed: 1, failed: 1, skipped: 1, ms: 1210 });
    expect(j.results[0].history[0].f).toBe("create");
  });
});
