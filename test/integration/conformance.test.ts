// The conformance suite against the real runc shim and against shimlab (both
// must pass everything under their profile), their comparison (only
// documented differences), the CLI's outputs, and broken shims that the named
// checks must catch.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runSuite } from "../../src/harness/conformance/runner";
import { PROFILES } from "../../src/harness/conformance/profiles";
import { compareReports, formatComparison } from "../../src/harness/conformance/compare";
import { ALL_CHECKS } from "../../src/harness/conformance/checks";
import type { SuiteReport } from "../../src/harness/conformance/types";
import { runCommand } from "../../src/harness/shim-runner";
import { FP_SHIM_BINARY, REPO_ROOT, SHIM_BINARY } from "../../src/harness/containerd";
import { runProcesses } from "../../src/harness/leaks";
import { busyboxRootfs, missing } from "../helpers/env";
import { OUTSIDE } from "../helpers/outside";
import { citation, ruleDoc } from "../../src/contract/cite";
import { isRuleId } from "../../src/contract/rules";

const RUNC_SHIM = "/usr/bin/containerd-shim-runc-v2";
const MUTANT = path.join(REPO_ROOT, "test", "fixtures", "mutant-shim.js");
const skip = missing("root", "runc", "busybox", "containerd-shim-runc-v2");

const failed = (r: SuiteReport) => r.checks.filter((c) => c.status !== "pass").map((c) => `${c.name} [${c.status}]: ${c.detail}`);
const status = (r: SuiteReport) => Object.fromEntries(r.checks.map((c) => [c.name, c.status]));

/**
 * Shim daemons (runc's or shimlab's) and mutant proxies started by this run's suites: none may outlive
 * them. Every copy's suites live under shimlab-conf/, so only this run's count.
 */
function suiteProcesses(): string[] {
  return runProcesses()
    .filter((p) => p.cmdline.includes("shimlab-conf/c-"))
    .map((p) => `${p.pid} ${p.cmdline}`);
}

describe.skipIf(skip)("conformance suite", () => {
  let rootfs: string;
  let runc: SuiteReport;
  let shimlab: SuiteReport;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "conf-test-"));

  beforeAll(() => {
    rootfs = busyboxRootfs();
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  afterEach(() => {
    expect(suiteProcesses()).toEqual([]);
  });

  it("has at least 40 named checks, each citing a rule of the contract that its page prints", () => {
    expect(ALL_CHECKS.length).toBeGreaterThanOrEqual(40);
    for (const c of ALL_CHECKS) {
      expect(c.name).toMatch(/^[a-z0-9-]+$/);
      expect(isRuleId(c.rule), `${c.name} cites ${c.rule}`).toBe(true);
      const [page, id] = ruleDoc(c.rule).split("#");
      expect(fs.readFileSync(path.join(REPO_ROOT, page), "utf8"), `${c.name} → ${ruleDoc(c.rule)}`).toContain(`<a id="${id}"></a>`);
    }
  });

  it("passes 100% against containerd-shim-runc-v2 with the runc profile", async () => {
    runc = await runSuite({ shim: RUNC_SHIM, profile: PROFILES.runc, rootfs });
    expect(failed(runc)).toEqual([]);
    expect(runc.leftovers).toEqual([]);
    expect(runc.counts.pass).toBe(ALL_CHECKS.length);
  }, 180_000);

  it("passes 100% against shimlab with the shimlab profile", async () => {
    shimlab = await runSuite({ shim: SHIM_BINARY, profile: PROFILES.shimlab, rootfs });
    expect(failed(shimlab)).toEqual([]);
    expect(shimlab.leftovers).toEqual([]);
    expect(shimlab.counts.pass).toBe(ALL_CHECKS.length);
  }, 240_000);

  for (const protocol of ["grpc", "ttrpc"] as const) {
    it(`passes 100% against shimlab driven as containerd 2.3 drives it, over ${protocol}`, async () => {
      const rep = await runSuite({ shim: SHIM_BINARY, profile: PROFILES.shimlab, rootfs, containerd2: { params: "binary", protocol } });
      expect(failed(rep)).toEqual([]);
      expect(rep.leftovers).toEqual([]);
      expect(rep.counts.pass).toBe(ALL_CHECKS.length);
    }, 240_000);
  }

  it("compares runc's shim and shimlab: only documented differences", () => {
    expect(runc && shimlab).toBeTruthy();
    const c = compareReports(runc, shimlab);
    const text = formatComparison(c, runc, shimlab);
    expect(c.undocumented, text).toBe(0);
    const kinds = new Set(c.differences.map((d) => d.documented));
    expect([...kinds].sort()).toEqual(["checkpoint", "illegal-state-code", "never-started-exit", "pids", "sandbox-api"]);
    // runc's shim serves no Sandbox API: every sandbox check saw Unimplemented there, OK on shimlab.
    expect(text).toMatch(/sandbox-lifecycle-order:\n {2}CreateSandbox(?: on a shim without the Sandbox API)?\n {4}A: (Unimplemented|\(absent\))/);
    expect(text).toMatch(/delete-running-refused:\n {2}Delete running\n {4}A: Unknown\n {4}B: FailedPrecondition\n {4}documented \(illegal-state-code\)/);
    // Against itself nothing differs.
    expect(compareReports(runc, runc).differences).toEqual([]);
  });

  it("the CLI writes JSON and JUnit and exits 0 when all pass", async () => {
    const json = path.join(tmp, "r.json");
    const junit = path.join(tmp, "r.xml");
    const only = "^(start-prints-unix-address|events-init-order|kill-unknown-container-notfound|pids-lists-init)$";
    const r = await runCommand(path.join(REPO_ROOT, "bin", "shimlab"), ["conformance", "--shim", SHIM_BINARY, "--only", only, "--json", json, "--junit", junit], { timeoutMs: 60_000 });
    expect(r.code, r.combined.toString()).toBe(0);
    expect(r.stdout.toString()).toMatch(/\[1\/4\] ok {3}binary\/start-prints-unix-address/);
    expect(r.stdout.toString()).toMatch(/4 passed, 0 failed, 0 skipped of 4 checks/);
    const j = JSON.parse(fs.readFileSync(json, "utf8"));
    expect(j.shim).toBe(SHIM_BINARY);
    expect(j.checks.map((c: { name: string }) => c.name)).toEqual(["start-prints-unix-address", "kill-unknown-container-notfound", "pids-lists-init", "events-init-order"]);
    for (const c of j.checks) expect(Object.keys(c)).toEqual(expect.arrayContaining(["name", "rule", "status", "detail"]));
    const x = fs.readFileSync(junit, "utf8");
    expect(x).toMatch(/^<\?xml/);
    expect(x.match(/<testcase /g)?.length).toBe(4);
    expect(x).toMatch(/<testsuite [^>]*tests="4" failures="0"/);
    // The reports a CI keeps cite each rule's entry in docs/contract, and nothing outside the repository.
    for (const c of j.checks) {
      expect(c.ruleDoc).toBe(ruleDoc(c.rule));
      expect(x).toContain(`<property name="rule" value="${citation(c.rule)}"/>`);
    }
    expect(fs.readFileSync(json, "utf8")).not.toMatch(OUTSIDE);
    expect(x).not.toMatch(OUTSIDE);
    expect(r.combined.toString()).not.toMatch(OUTSIDE);
  }, 90_000);

  it("the CLI compares two shims and prints the documented differences", async () => {
    const only = "^(delete-running-refused|events-init-order|checkpoint-by-profile)$";
    const r = await runCommand(path.join(REPO_ROOT, "bin", "shimlab"), ["conformance", "--compare", RUNC_SHIM, SHIM_BINARY, "--only", only], { timeoutMs: 60_000 });
    expect(r.code, r.combined.toString()).toBe(0);
    const out = r.stdout.toString();
    expect(out).toMatch(/profile runc\): 3 passed, 0 failed/);
    expect(out).toMatch(/profile shimlab\): 3 passed, 0 failed/);
    expect(out).toMatch(/checkpoint-by-profile:\n {2}Checkpoint\n {4}A: Unknown\n {4}B: Unimplemented\n {4}documented \(checkpoint\)/);
    expect(out).toMatch(/2 differences, 2 documented, 0 undocumented/);
  }, 90_000);

  it("catches a shim that publishes TaskExit before TaskStart and duplicates TaskDelete (event faults, in the failpoint shim)", async () => {
    const faults = JSON.stringify([
      { action: "delay", topic: "/tasks/start", ms: 1500 },
      { action: "duplicate", topic: "/tasks/delete" },
    ]);
    const rep = await runSuite({ shim: FP_SHIM_BINARY, profile: PROFILES.shimlab, rootfs, only: /^events-/, env: { SHIMLAB_EVENT_FAULTS: faults } });
    const s = status(rep);
    expect(s["events-start-before-exit-fast"]).toBe("fail");
    expect(s["events-init-order"]).toBe("fail");
    expect(rep.checks.find((c) => c.name === "events-init-order")!.detail).toMatch(/\/tasks\/(delete|start) published [02] times|\/tasks\/exit came before \/tasks\/start/);
    expect(s["events-delete-follows-create-when-never-started"]).toBe("fail");
    // rules the faults do not touch still pass
    expect(s["events-create-fields"]).toBe("pass");
    expect(s["events-exec-order"]).toBe("pass");
    expect(s["events-exit-after-kill-137"]).toBe("pass");
  }, 120_000);

  it("catches a sandbox shim that answers Sandbox RPCs for an id it does not serve with OK (mutant proxy)", async () => {
    const rep = await runSuite({ shim: MUTANT, profile: PROFILES.shimlab, rootfs, only: /^sandbox-/ });
    const s = status(rep);
    expect(s["sandbox-unknown-id-notfound"]).toBe("fail");
    expect(rep.checks.find((c) => c.name === "sandbox-unknown-id-notfound")!.detail).toBe("StartSandbox unknown id: want NotFound, got OK");
    // The sandbox it does serve still behaves: the other rules pass through the proxy.
    for (const name of ["sandbox-lifecycle-order", "sandbox-create-twice-alreadyexists", "sandbox-stop-stopped", "sandbox-wait-after-exit", "sandbox-failed-create-shutdown"]) expect(s[name], name).toBe("pass");
    expect(rep.leftovers).toEqual([]);
  }, 120_000);

  it("catches a shim that answers Kill of an unknown container with OK (mutant proxy), and the CLI exits 1", async () => {
    const json = path.join(tmp, "m.json");
    const only = "^(kill-unknown-container-notfound|kill-unknown-exec-notfound|kill-exited-init-notfound)$";
    const r = await runCommand(path.join(REPO_ROOT, "bin", "shimlab"), ["conformance", "--shim", MUTANT, "--profile", "shimlab", "--only", only, "--json", json], { timeoutMs: 60_000 });
    expect(r.code, r.combined.toString()).toBe(1);
    const j = JSON.parse(fs.readFileSync(json, "utf8"));
    const byName = Object.fromEntries(j.checks.map((c: { name: string; status: string; detail: string }) => [c.name, c]));
    expect(byName["kill-unknown-container-notfound"].status).toBe("fail");
    expect(byName["kill-unknown-container-notfound"].detail).toBe("Kill unknown id: want NotFound, got OK");
    expect(byName["kill-unknown-exec-notfound"].status).toBe("pass");
    expect(byName["kill-exited-init-notfound"].status).toBe("pass");
    expect(r.stdout.toString()).toMatch(/FAIL kill\/kill-unknown-container-notfound/);
    // The failure names its rule's entry, and where this copy of shimlab keeps the contract.
    const out = r.stdout.toString();
    expect(out).toContain(`rule: ${citation("kill.unknown-container")}`);
    expect(out).toContain(`(rule paths are under ${REPO_ROOT}; HTML form: ${path.join(REPO_ROOT, "dist", "docs", "contract")}/README.html)`);
    expect(r.combined.toString()).not.toMatch(OUTSIDE);
    expect(fs.readFileSync(json, "utf8")).not.toMatch(OUTSIDE);
  }, 90_000);
});
