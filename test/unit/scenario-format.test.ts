// What is generated from the scenario format and the fault kinds stays as the
// code says (scenarios/scenario.schema.json, the fault table), the published
// JSON Schema judges files as the loader does, and each fixed fault reaches
// the shim in the formats the shim's own parsers read.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import path from "node:path";
import Ajv from "ajv";
import { parse as parseYaml } from "yaml";
import { scenarioJsonSchema, scenarioJsonSchemaText } from "../../src/scenarios/format";
import { parseScenario, scenarioFiles } from "../../src/scenarios/load";
import { regenerateFaultTable } from "../../src/faults/kinds/table";
import { FAULT_KINDS, launchFaults, type FaultDef } from "../../src/faults/kinds";
import { scopeOf, type FaultKind } from "../../src/faults/kinds/kind";
import { EVENT_FAULTS_ENV, parseEventFaults } from "../../src/faults/event-faults";
import { AGENT_LINK_FAULTS_ENV, parseLinkToxics } from "../../src/faults/agent-link";
import { AGENT_FAILPOINTS_ENV } from "../../src/mock-agent/failpoints";
import { FailpointTable, SHIM_FAILPOINT_ANNOTATION } from "../../src/faults/failpoint";

const DIR = path.resolve(__dirname, "..", "..", "scenarios");
const SCHEMA_LINE = "# yaml-language-server: $schema=./scenario.schema.json";

describe("generated from the format (npm run scenarios:schema rewrites them)", () => {
  it("scenarios/scenario.schema.json is the format's JSON Schema", () => {
    expect(fs.readFileSync(path.join(DIR, "scenario.schema.json"), "utf8")).toBe(scenarioJsonSchemaText());
  });

  it("the fault table of scenarios/README.md is the registry's", () => {
    const page = fs.readFileSync(path.join(DIR, "README.md"), "utf8");
    expect(page).toBe(regenerateFaultTable(page));
    for (const k of FAULT_KINDS) expect(page).toContain(`| \`${scopeOf(k as FaultKind)}\` |`);
  });

  it("every shipped scenario names the schema for its editor on its first line", () => {
    for (const f of scenarioFiles([DIR])) expect(fs.readFileSync(f, "utf8").split("\n")[0], f).toBe(SCHEMA_LINE);
  });
});

describe("the published JSON Schema", () => {
  const validate = new Ajv({ strict: false, allErrors: true }).compile(scenarioJsonSchema());

  it("accepts every shipped scenario", () => {
    for (const f of scenarioFiles([DIR])) expect(validate(parseYaml(fs.readFileSync(f, "utf8"))) || validate.errors, f).toBe(true);
  });

  it("refuses what the loader refuses: a typo'd key, an unknown op, a parallel step with do, an unknown scope, a toxic's missing attribute", () => {
    const base = { name: "s", description: "d", containers: { c: { args: ["/bin/true"] } } };
    const bad = [
      { ...base, steps: [{ do: "create", contianer: "c" }] },
      { ...base, steps: [{ do: "strat", container: "c" }] },
      { ...base, steps: [{ do: "wait", parallel: [[{ do: "wait", container: "c" }], [{ do: "wait", container: "c" }]] }] },
      { ...base, steps: [{ do: "create", container: "c" }], faults: [{ name: "f", scope: "wire" }] },
      { ...base, steps: [{ do: "create", container: "c" }], faults: [{ name: "f", scope: "containerd-link", toxic: { type: "latency" } }] },
    ];
    for (const doc of bad) {
      expect(validate(doc), JSON.stringify(doc)).toBe(false);
      expect(() => parseScenario(JSON.stringify(doc), "s.yaml")).toThrow();
    }
    expect(validate({ ...base, steps: [{ parallel: [[{ do: "wait", container: "c" }], [{ do: "kill", container: "c", signal: 9 }]] }] })).toBe(true);
  });
});

describe("fault kinds fixed at shim start", () => {
  const faults = parseScenario(
    `name: s
description: d
containers:
  c: { args: [/bin/true] }
faults:
  - { name: fp, scope: task-rpc, method: Start, failpoint: "1*error(boom)" }
  - { name: afp, scope: agent-rpc, method: CreateContainer, failpoint: "1*delay(100)" }
  - { name: ev, scope: events, action: reorder, topic: /tasks/exit, window_size: 2 }
  - { name: lag, scope: agent-link, toxic: { type: latency, latency: 40 } }
  - { name: fw, scope: forward, action: unavailable }
steps:
  - { do: create, container: c }
`,
    "s.yaml",
  ).faults as FaultDef[];

  it("become the annotations and environment the shim and the agent parse, in their formats", () => {
    const l = launchFaults(faults, { [EVENT_FAULTS_ENV]: [{ action: "drop", topic: "/tasks/exit" }] });
    expect(l.annotations).toEqual({ [SHIM_FAILPOINT_ANNOTATION + "Start"]: "1*error(boom)" });
    const table = new FailpointTable();
    table.loadPrefixed(l.annotations, SHIM_FAILPOINT_ANNOTATION);
    expect(table.get("Start")?.next()).toEqual({ type: "error", message: "boom" });
    expect(JSON.parse(l.env[AGENT_FAILPOINTS_ENV])).toEqual({ CreateContainer: "1*delay(100)" });
    expect(parseEventFaults(l.env[EVENT_FAULTS_ENV])).toEqual([
      { action: "reorder", topic: "/tasks/exit", window: 2 },
      { action: "drop", topic: "/tasks/exit" },
    ]);
    expect(parseLinkToxics(l.env[AGENT_LINK_FAULTS_ENV])).toEqual([{ name: "lag", stream: "downstream", spec: { type: "latency", latency: 40 } }]);
    // A timed kind adds nothing to the launch: the runner applies it.
    expect(Object.keys(l.env).sort()).toEqual([AGENT_FAILPOINTS_ENV, AGENT_LINK_FAULTS_ENV, EVENT_FAULTS_ENV].sort());
  });

  it("launch nothing without faults", () => {
    expect(launchFaults([])).toEqual({ env: {}, annotations: {} });
  });
});
