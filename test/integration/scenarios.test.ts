// Every scenario in scenarios/ against shimlab's binary with the mock agent;
// then the same scenarios against shimlab given a known bug (a mutant), which
// they must catch; then the CLI with its reports.
import { describe, it, expect, afterEach, afterAll, beforeAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadScenarioFile, scenarioFiles } from "../../src/scenarios/load";
import { runScenario } from "../../src/scenarios/runner";
import { mutantOptions } from "../../src/scenarios/mutants";
import { runCommand } from "../../src/harness/shim-runner";
import { REPO_ROOT } from "../../src/harness/containerd";
import type { ScenarioResult } from "../../src/scenarios/types";
import { formatHistory } from "../../src/scenarios/history";
import { busyboxRootfs, missing, REQUIRE_ALL } from "../helpers/env";
import { findKernel } from "../../src/guest-image";
import { expectNoLeaks } from "../helpers/leaks";
import { OUTSIDE } from "../helpers/outside";
import { citation } from "../../src/contract/cite";

const skip = missing("root", "runc", "busybox", "containerd", "ctr");
// Scenarios whose sandbox is a QEMU VM need QEMU and a guest kernel too (CI has them: nothing skips there).
const noVm = skip ?? missing("qemu-system-x86_64", "crun", "xz") ?? (findKernel() ? null : REQUIRE_ALL ? fail("no guest kernel: apt-get install linux-image-amd64") : "needs linux-image-amd64");
function fail(why: string): never {
  throw new Error(`SHIMLAB_REQUIRE_ALL=1 but ${why}`);
}
const DIR = path.join(REPO_ROOT, "scenarios");
const files = scenarioFiles([DIR]);

/** Everything a scenario world makes lives under a "scn-" temporary directory (every copy's do: the checks keep this run's). */
const MARKER = path.join(os.tmpdir(), "scn-");

function explain(r: ScenarioResult): string {
  const failed = r.checks.filter((c) => !c.ok).map((c) => `${c.name}:\n  ${c.problems.join("\n  ")}`);
  return `${r.name}: ${r.verdict}\n${failed.join("\n")}\n${formatHistory(r.history)}`;
}

describe.skipIf(skip)("scenarios", () => {
  afterEach(async () => {
    await expectNoLeaks([MARKER]);
  });

  for (const f of files) {
    const vm = loadScenarioFile(f).shim_config?.hypervisor === "qemu";
    it.skipIf(vm && noVm)(path.basename(f, ".yaml"), async () => {
      const s = loadScenarioFile(f);
      const r = await runScenario(s, { rootfs: busyboxRootfs() });
      expect(r.verdict, explain(r)).toBe("pass");
      expect(r.history.length).toBeGreaterThan(0);
      // a factory-link fault acts when the shim asks the factory: a scenario that never got there tested nothing
      for (const f of s.faults.filter((x) => x.scope === "factory-link")) expect(r.faults.some((x) => x.fault === f.name && /factory killed/.test(x.what)), `${f.name} never fired`).toBe(true);
    }, vm ? 180_000 : undefined);
  }
});

/** scenario, mutant, the check that must fail. */
const MUTANT_CASES: [string, string, string][] = [
  ["lifecycle-basic", "lose-exit", "exit-once"],
  ["exec-exit-after-init", "late-exec-exit", "event-order"],
  ["wait-then-state-stopped", "wait-before-stopped", "wait-then-stopped"],
  ["delete-slower-than-client", "ignore-shutdown", "no-leaks"],
  ["agent-connect-never-completes", "no-dial-deadline", "expectations"],
  ["lifecycle-basic", "wait-exit-zero", "exit-consistent"],
  ["pod-two-containers", "duplicate-exit", "exit-once"],
  ["containerd-down-exit", "lose-exit", "expectations"],
  ["containerd-exec-exits", "late-exec-exit", "event-order"],
  // The Sandbox API's pods (sandbox_api): the same bugs in a task of a shim-sandboxer pod.
  ["sandbox-wait-across-containerd-restart", "lose-exit", "exit-once"],
  ["sandbox-shutdown-with-containers", "wait-exit-zero", "exit-consistent"],
];

describe.skipIf(skip)("mutants: the scenarios fail when shimlab has the bug", () => {
  afterEach(async () => {
    await expectNoLeaks([MARKER]);
  });

  for (const [name, mutant, check] of MUTANT_CASES) {
    it(`${name} catches ${mutant}`, async () => {
      const s = loadScenarioFile(path.join(DIR, `${name}.yaml`));
      const r = await runScenario(s, { rootfs: busyboxRootfs(), ...mutantOptions([mutant]), mutantNames: [mutant] });
      expect(r.verdict, explain(r)).toBe("fail");
      const c = r.checks.find((x) => x.name === check)!;
      expect(c.ok, `${check} should fail:\n${explain(r)}`).toBe(false);
    });
  }
});

describe.skipIf(skip)("shimlab scenario (the CLI)", () => {
  // Made only when one of these tests runs (a -t filter may run none), removed after them.
  let out = "";
  beforeAll(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "scn-cli-out-"));
  });
  afterAll(() => {
    if (out) fs.rmSync(out, { recursive: true, force: true });
  });
  afterEach(async () => {
    await expectNoLeaks([MARKER]);
  });

  it("runs a scenario and writes JSON and JUnit reports", async () => {
    const json = path.join(out, "r.json");
    const junit = path.join(out, "r.xml");
    const r = await runCommand(path.join(REPO_ROOT, "bin", "shimlab"), ["scenario", "run", path.join(DIR, "lifecycle-basic.yaml"), "--json", json, "--junit", junit], { timeoutMs: 60_000 });
    expect(r.code, r.combined.toString()).toBe(0);
    expect(r.stdout.toString()).toBe("1 passed, 0 failed, 0 skipped" + r.stdout.toString().slice(29));
    expect(r.stderr.toString()).toMatch(/\[1\/1\] lifecycle-basic\n[\s\S]*PASS lifecycle-basic/);
    const j = JSON.parse(fs.readFileSync(json, "utf8"));
    expect(j.summary).toMatchObject({ total: 1, passed: 1, failed: 0 });
    const ops = j.results[0].history as { type: string; f: string }[];
    expect(ops.filter((o) => o.type === "invoke").length).toBe(ops.filter((o) => o.type !== "invoke").length);
    expect(j.results[0].events.map((e: { topic: string }) => e.topic)).toEqual(["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
    const x = fs.readFileSync(junit, "utf8");
    expect(x).toMatch(/<testsuite name="shimlab scenarios" tests="1" failures="0" skipped="0" errors="0"/);
    expect(x).toContain('<testcase classname="scenarios.lifecycle-basic" name="lifecycle-basic"');
  });

  it("exits 1 with a failing verdict under a mutant, and the JUnit report says why", async () => {
    const junit = path.join(out, "m.xml");
    const r = await runCommand(path.join(REPO_ROOT, "bin", "shimlab"), ["scenario", "run", path.join(DIR, "lifecycle-basic.yaml"), "--mutant", "lose-exit", "--junit", junit, "--quiet"], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    const x = fs.readFileSync(junit, "utf8");
    expect(x).toMatch(/<failure message="[^"]*exit-once: job: Wait returned an exit status but no \/tasks\/exit ever reached containerd/);
    // The verdict cites the broken rule's entry in docs/contract, and nothing outside the repository.
    expect(x).toContain(`rule: ${citation("events.exit-published")}`);
    expect(x).not.toMatch(OUTSIDE);
    expect(r.combined.toString()).not.toMatch(OUTSIDE);
  });

  it("refuses a malformed file naming file, line and path, running nothing", async () => {
    const bad = path.join(out, "bad.yaml");
    fs.writeFileSync(bad, "name: bad\ndescription: x\ncontainers:\n  a: { args: [/bin/true] }\nsteps:\n  - do: strat\n    container: a\n");
    const r = await runCommand(path.join(REPO_ROOT, "bin", "shimlab"), ["scenario", "run", bad], { timeoutMs: 30_000 });
    expect(r.code).toBe(1);
    expect(r.stderr.toString()).toContain(`${bad}:6:5: steps[0]: do: expected one of create, start, exec`);
  });
});
