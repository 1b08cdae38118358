// Lifecycle traces end to end: the demo traced by every process it runs,
// rendered, and opened in headless Chromium; and a fault (a dropped
// /tasks/start) found, marked as an ordering violation, and its rule's link
// followed to the rule's entry in the contract's HTML form.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runDemo } from "../../src/cli/lifecycle-demo";
import { ContainerdEmulator } from "../../src/harness/emulator";
import { FP_SHIM_BINARY, SHIM_BINARY } from "../../src/harness/containerd";
import { readTrace, buildModel, ARROW_KINDS } from "../../src/trace/model";
import { renderHtml } from "../../src/trace/html";
import type { TraceRecord } from "../../src/trace/recorder";
import { Containerd } from "../../src/harness/containerd";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { ARTIFACTS, busyboxRootfs, missing } from "../helpers/env";
import { CHROMIUM, noBrowser, openPage } from "../helpers/page";
import { expectNoLeaks } from "../helpers/leaks";
import { OUTSIDE } from "../helpers/outside";
import { rule } from "../../src/contract/rules";

interface RuleFollowed {
  /** The rule the violated arrow names, and where its link points. */
  rule: string;
  href: string;
  /** Where the browser ended up, and what it found there. */
  url: string;
  hash: string;
  anchorExists: boolean;
  /** The text of the table row holding the anchor (the rule's entry). */
  entry: string;
  /** The anchor is the page's :target and its row is on screen. */
  targeted: boolean;
  inView: boolean;
  errors: string[];
}

/** Opens a trace page from disk, clicks the first violated arrow's rule link, and reports the entry it lands on. */
async function followViolatedRule(file: string, screenshot: string): Promise<RuleFollowed> {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const ctx = await browser.newContext({ viewport: { width: 1800, height: 1200 } });
    const errors: string[] = [];
    await ctx.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith("file://")) return route.continue();
      errors.push(`network request: ${url}`);
      return route.abort();
    });
    const page = await ctx.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto("file://" + file);
    const link = page.locator("#diagram g.arrow.violation a.rule-link").first();
    const rule = (await link.getAttribute("data-rule")) ?? "";
    const href = (await link.getAttribute("href")) ?? "";
    await Promise.all([page.waitForURL((u) => u.href.includes(".html#"), { timeout: 15_000 }), link.locator("text").click()]);
    const seen = await page.evaluate(() => {
      const id = decodeURIComponent(location.hash.slice(1));
      const a = document.getElementById(id);
      const row = a?.closest("tr");
      const r = row?.getBoundingClientRect();
      return {
        url: location.href,
        hash: id,
        anchorExists: !!a,
        entry: row?.textContent ?? "",
        targeted: !!a && a.matches(":target"),
        inView: !!r && r.bottom > 0 && r.top < window.innerHeight,
      };
    });
    await page.screenshot({ path: screenshot });
    return { rule, href, ...seen, errors };
  } finally {
    await browser.close();
  }
}

const lanesOf = (rs: TraceRecord[]) => 4 + new Set(rs.filter((r) => r.kind.startsWith("process.")).map((r) => r.proc)).size;
const arrowsOf = (rs: TraceRecord[]) => rs.filter((r) => ARROW_KINDS.has(r.kind)).length;

describe("the demo, traced across every hop", () => {
  let dir: string;
  let records: TraceRecord[];
  let html: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-trace-demo-"));
    const r = await runDemo({ dir, quiet: true });
    expect(r.exitCodes).toEqual({ "demo-job": 3, "demo-web/e1": 5, "demo-web": 137, "demo-pod": expect.any(Number) });
    html = r.htmlPath!;
    records = readTrace(r.tracePath!);
  }, 120_000);

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    await expectNoLeaks([dir]);
  });

  it("has a line from every process, for every hop", () => {
    const roles = new Set(records.map((r) => r.role));
    expect([...roles].sort()).toEqual(["agent", "containerd", "shim", "shim-delete", "shim-start"]);
    const kinds = (k: string) => records.filter((r) => r.kind === k);
    // containerd → shim: the binary, and Task calls with stream ids, each answered.
    expect(kinds("exec.call").map((r) => `${r.action} ${r.task}`)).toEqual([
      "start demo-pod",
      "start demo-web",
      "start demo-job",
      "delete demo-job",
      "delete demo-web",
      "delete demo-pod",
    ]);
    const taskCalls = kinds("rpc.call").filter((r) => r.from === "containerd");
    expect(taskCalls.map((r) => r.method)).toEqual(expect.arrayContaining(["Create", "Start", "Wait", "Exec", "Kill", "Delete", "Shutdown"]));
    for (const c of taskCalls) {
      expect(c.stream).toBeTypeOf("number");
      expect((c.stream as number) % 2).toBe(1);
      expect(records.filter((r) => r.kind === "rpc.reply" && r.id === c.id)).toHaveLength(1);
    }
    // shim → agent, read off the wire.
    const agentCalls = kinds("rpc.call").filter((r) => r.to === "agent").map((r) => r.method);
    expect(agentCalls).toEqual(expect.arrayContaining(["Check", "CreateSandbox", "CreateContainer", "StartContainer", "ExecProcess", "SignalProcess", "WaitProcess", "DestroySandbox"]));
    // agent → processes: four processes, each spawned and exited once.
    expect(new Set(kinds("process.spawn").map((r) => r.proc))).toEqual(new Set(["demo-pod", "demo-web", "demo-job", "demo-web/e1"]));
    expect(kinds("process.exit").map((r) => `${r.proc}=${r.status}`)).toEqual(expect.arrayContaining(["demo-job=3", "demo-web/e1=5", "demo-web=137"]));
    // VM (the agent process) up and down; events out; files seen.
    expect(kinds("vm.start")).toHaveLength(1);
    expect(kinds("vm.stopped")).toHaveLength(1);
    expect(kinds("event").map((r) => r.topic)).toEqual(expect.arrayContaining(["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit", "/tasks/delete"]));
    const created = kinds("file").filter((r) => r.op === "created");
    const ends = (suffix: string, type: string) => created.some((r) => String(r.path).endsWith(suffix) && r.type === type);
    expect(ends("/demo-pod/address", "file")).toBe(true);
    expect(ends("/demo-pod/config.json", "file")).toBe(true);
    expect(ends("/demo-pod/agent.sock", "socket")).toBe(true);
    expect(ends("-stdout", "fifo")).toBe(true);
    const address = String(kinds("exec.reply")[0].address).replace(/^unix:\/\//, "");
    expect(created.some((r) => r.path === address && r.type === "socket")).toBe(true);
    // One clock for all processes: the daemon's first call comes after start answered.
    const startReply = kinds("exec.reply")[0];
    expect(taskCalls[0].t).toBeGreaterThan(startReply.t);
  });

  it("keeps containerd's MUST orderings, and each process's state machine", () => {
    const m = buildModel(records);
    expect(m.violations).toEqual([]);
    const chains = Object.fromEntries(m.states.map((s) => [s.proc, s.steps.map((x) => x.status).join(">")]));
    expect(chains).toEqual({
      "demo-pod": "created>running>stopped>deleted",
      "demo-web": "created>running>stopped>deleted",
      "demo-job": "created>running>stopped>deleted",
      "demo-web/e1": "created>running>stopped>deleted",
    });
  });

  it.skipIf(noBrowser)("opens in Chromium: no errors, an arrow per call, reply, event and process change, a lane per party", async () => {
    const view = await openPage(html, path.join(ARTIFACTS, "trace-demo.png"));
    expect(view.errors).toEqual([]);
    expect(view.arrows).toBe(arrowsOf(records));
    expect(view.lanes).toBe(lanesOf(records));
    expect(view.lanes).toBe(8);
    expect(view.violations).toEqual([]);
    expect(view.detailAfterClick).toContain('"kind": "exec.call"');
    expect(fs.statSync(path.join(ARTIFACTS, "trace-demo.png")).size).toBeGreaterThan(10_000);
  }, 60_000);
});

describe("an ordering violation from a fault", () => {
  let emu: ContainerdEmulator;
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-trace-fault-"));
    // Event faults are the failpoint shim's: the production shim ignores them.
    emu = new ContainerdEmulator({
      binary: FP_SHIM_BINARY,
      namespace: "tracefault",
      dir: path.join(dir, "emu"),
      env: {
        SHIMLAB_TRACE: path.join(dir, "trace") + "/", // a file per process this time
        SHIMLAB_EVENT_FAULTS: JSON.stringify([{ action: "drop", topic: "/tasks/start", count: 1 }]),
        SHIMLAB_AGENT_RUNTIME: "host",
        SHIMLAB_SOCKET_DIR: path.join(dir, "s"),
      },
    });
    await emu.start();
  });

  afterAll(async () => {
    await emu?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    await expectNoLeaks([emu.address]);
  });

  it("is found in the trace and marked red on the page", async () => {
    const id = "tf1";
    const bundle = emu.bundle(id, emu.spec(id, { args: ["/bin/sh", "-c", "exit 0"], rootPath: "/" }));
    const t = await emu.startShim(id, bundle);
    try {
      await t.task.Create({ id, bundle });
      await t.task.Start({ id });
      await t.task.Wait({ id });
      await emu.events.waitFor((e) => e.topic === "/tasks/exit");
      await t.task.Delete({ id });
      await t.task.Shutdown({ id });
    } finally {
      t.close();
    }
    await emu.runner.delete(id, bundle);
    await new Promise((r) => setTimeout(r, 300));
    // containerd never heard of the start: exactly what the trace must show.
    expect(emu.events.events.map((e) => e.topic)).toEqual(["/tasks/create", "/tasks/exit", "/tasks/delete"]);

    const traceDir = path.join(dir, "trace");
    expect(fs.readdirSync(traceDir).length).toBeGreaterThanOrEqual(4); // start, daemon, agent, delete
    const records = readTrace(traceDir);
    const m = buildModel(records);
    expect(m.violations.map((v) => `${v.level} ${v.rule}`).sort()).toEqual(["MUST events.exit-after-start", "SHOULD events.event-before-reply"]);
    const out = path.join(dir, "fault.html");
    fs.writeFileSync(out, renderHtml(m, { title: "dropped /tasks/start" }));
    const page = fs.readFileSync(out, "utf8");
    expect(page).toContain("TaskExit for tf1 without a TaskStart before it");
    expect(page).toContain('<a class="rule-link" href="file://');
    expect(page).not.toMatch(OUTSIDE);
    // Every rule link on the page names an HTML page the build wrote, with an element of the rule's id.
    const hrefs = [...page.matchAll(/class="rule-link" href="file:\/\/([^"#]+)#([^"]+)"/g)];
    expect(hrefs.length).toBeGreaterThan(0);
    for (const [, file, id] of hrefs) expect(fs.readFileSync(decodeURIComponent(file), "utf8"), `${file}#${id}`).toContain(`id="${id}"`);
    if (noBrowser) return;
    const view = await openPage(out, path.join(ARTIFACTS, "trace-fault.png"));
    expect(view.errors).toEqual([]);
    expect(view.arrows).toBe(arrowsOf(records));
    expect(view.lanes).toBe(lanesOf(records));
    expect(view.violations).toHaveLength(1);
    expect(view.violations[0]).toMatch(/^⚠ \/tasks\/exit/);
    expect(view.violationStroke).toBe("rgb(238, 0, 0)");

    // The violated rule links to its entry in the contract's HTML form, and the browser can follow it from disk.
    const followed = await followViolatedRule(out, path.join(ARTIFACTS, "trace-fault-rule.png"));
    expect(followed.errors).toEqual([]);
    expect(followed.rule).toBe("events.exit-after-start");
    expect(followed.href).toMatch(/^file:\/\/\/.*\/dist\/docs\/contract\/events\.html#events\.exit-after-start$/);
    expect(followed.url).toBe(followed.href);
    expect(followed.hash).toBe("events.exit-after-start");
    expect(followed.anchorExists).toBe(true);
    expect(followed.targeted).toBe(true);
    expect(followed.inView).toBe(true);
    expect(followed.entry).toContain("events.exit-after-start");
    // The entry is the rule as the data states it (level and text), not just a matching anchor.
    expect(followed.entry).toContain("MUST");
    expect(followed.entry).toContain(rule("events.exit-after-start").text.replace(/`/g, ""));
  }, 90_000);
});

const noContainerd = missing("root", "containerd", "ctr", "runc", "busybox");

describe.skipIf(noContainerd)("a trace of ctr run under the real containerd 1.6", () => {
  let ctd: Containerd;
  let traceDir: string;

  beforeAll(async () => {
    traceDir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-trace-ctd-")) + "/";
    // containerd hands its environment to every shim it runs.
    ctd = new Containerd({ env: { SHIMLAB_TRACE: traceDir } });
    await ctd.start();
  });

  afterAll(async () => {
    await ctd?.destroy();
    if (ctd) removeCgroupDirs(ctd.cgroupParent);
    if (traceDir) fs.rmSync(traceDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    await expectNoLeaks([ctd.address], [ctd.dir], ctd.cgroupParent);
  });

  it("shows the calls containerd really makes, in its order, and every MUST ordering kept", async () => {
    const r = await ctd.ctr(["run", "--rm", "--runtime", "io.containerd.shimlab.v2", "--rootfs", busyboxRootfs(), "tr1", "/bin/echo", "hello"]);
    expect(r.out).toBe("hello\n");
    await new Promise((res) => setTimeout(res, 500)); // the daemon's and delete's last lines
    const records = readTrace(traceDir);
    const m = buildModel(records);
    const execs = records.filter((x) => x.kind === "exec.call").map((x) => x.action);
    expect(execs).toEqual(["start", "delete"]);
    // containerd 1.6's own sequence (rule task.call-order), as the shim received it.
    const calls = records.filter((x) => x.kind === "rpc.call" && x.from === "containerd").map((x) => x.method);
    // (ctr's Wait connects concurrently with Start, so a second Connect may come before Start.)
    expect(calls.slice(0, 2)).toEqual(["Create", "Connect"]);
    expect(calls).toEqual(expect.arrayContaining(["Start", "Wait", "State", "Delete", "Shutdown"]));
    expect(calls.indexOf("Start")).toBeLessThan(calls.indexOf("Delete"));
    expect(calls.indexOf("Wait")).toBeLessThan(calls.indexOf("Delete"));
    expect(calls.at(-1)).toBe("Shutdown");
    expect(m.events.map((e) => e.topic)).toEqual(["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
    expect(m.violations).toEqual([]);
    expect(m.states.map((x) => `${x.proc}: ${x.steps.map((s) => s.status).join(">")}`)).toEqual(["tr1: created>running>stopped>deleted"]);
    expect(records.some((x) => x.kind === "process.exit" && x.proc === "tr1" && x.status === 0)).toBe(true);
    // Without a watcher on containerd's side, the shim tells of the files it made: socket, address, the sandbox's run dir.
    const made = m.files.filter((f) => f.op === "created");
    const address = String(records.find((x) => x.kind === "exec.reply")!.address).replace(/^unix:\/\//, "");
    expect(made).toEqual(expect.arrayContaining([expect.objectContaining({ path: address, type: "socket" }), expect.objectContaining({ type: "socket", path: expect.stringMatching(/\/tr1\/agent\.sock$/) })]));
    expect(made.some((f) => f.path.endsWith("/tr1/address"))).toBe(true);
    expect(m.files.some((f) => f.op === "removed" && f.path.endsWith("/tr1/agent.sock"))).toBe(true);
  }, 60_000);
});

describe("a trace that cannot be written", () => {
  it("changes nothing: start prints only its address and the task runs", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-trace-bad-"));
    fs.writeFileSync(path.join(dir, "not-a-dir"), "");
    const emu = new ContainerdEmulator({
      binary: SHIM_BINARY,
      namespace: "tracebad",
      dir: path.join(dir, "emu"),
      env: { SHIMLAB_TRACE: path.join(dir, "not-a-dir", "t.jsonl"), SHIMLAB_AGENT_RUNTIME: "host", SHIMLAB_SOCKET_DIR: path.join(dir, "s") },
    });
    await emu.start();
    try {
      const id = "tb1";
      const bundle = emu.bundle(id, emu.spec(id, { args: ["/bin/sh", "-c", "exit 4"], rootPath: "/" }));
      const t = await emu.startShim(id, bundle);
      try {
        expect(t.startResult.combined.toString()).toBe(t.address);
        await t.task.Create({ id, bundle });
        await t.task.Start({ id });
        expect((await t.task.Wait({ id })).exitStatus).toBe(4);
        await t.task.Delete({ id });
        await t.task.Shutdown({ id });
      } finally {
        t.close();
      }
      expect((await emu.runner.delete(id, bundle)).result.code).toBe(0);
      await expectNoLeaks([emu.address]);
    } finally {
      await emu.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
