// docs/README.md, the learner's guided path, promises what each command
// prints. This runs every `./bin/shimlab` command of its ```sh blocks, in
// order, and holds the command's output to the plain ``` block(s) after it,
// line by line (each line must appear whole; `…` stands for anything, XXXXXX
// for the run directory's random suffix, and the arrow count may vary). A
// change to the demo, the scenarios or the verdicts that makes the guide lie
// fails here.
import { describe, it, expect, afterAll } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { runCommand } from "../../src/harness/shim-runner";
import { REPO_ROOT } from "../../src/harness/containerd";
import { missing } from "../helpers/env";

const skip = missing("root", "runc", "busybox");
const noBrowser = missing("chromium");
const CHROMIUM = "/usr/bin/chromium";
const GUIDE = path.join(REPO_ROOT, "docs", "README.md");

interface Step {
  command: string;
  expected: string[];
}

/** The guide's runnable commands, each with the output lines shown before the next command. */
function steps(markdown: string): Step[] {
  const out: Step[] = [];
  for (const m of markdown.matchAll(/```(\w*)\n([\s\S]*?)```/g)) {
    const [, lang, body] = m;
    if (lang === "sh") {
      for (const line of body.split("\n")) if (/^(\S+=\S+ )*\.\/bin\/shimlab /.test(line)) out.push({ command: line, expected: [] });
    } else if (lang === "" && out.length) out[out.length - 1].expected.push(...body.split("\n").filter((l) => l.trim()));
  }
  return out;
}

/** One shown line as a pattern over one line of output. */
function pattern(line: string): RegExp {
  const esc = line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const loose = esc
    .replace(/…/g, ".*?")
    .replace(/XXXXXX/g, "[A-Za-z0-9]{6}")
    .replace(/\b\d+ arrows/, "\\d+ arrows");
  return new RegExp(`^${loose}$`, "m");
}

describe.skipIf(skip)("the guided path (docs/README.md)", () => {
  const runDirs: string[] = [];
  afterAll(() => {
    // The demo keeps its run directory for the reader; the test does not.
    for (const d of runDirs) fs.rmSync(d, { recursive: true, force: true });
  });

  const pages: { command: string; page: string }[] = [];
  const guide = fs.readFileSync(GUIDE, "utf8");
  const all = steps(guide);

  it("shows four commands with their output: the demo, a scenario, the scenario with a mutant, the demo with an event fault", () => {
    expect(all.map((s) => s.command.replace(/'[^']*'/, "'…'"))).toEqual([
      "./bin/shimlab demo",
      "./bin/shimlab scenario run scenarios/wait-then-state-stopped.yaml",
      "./bin/shimlab scenario run scenarios/wait-then-state-stopped.yaml --mutant wait-before-stopped",
      "SHIMLAB_EVENT_FAULTS='…' ./bin/shimlab demo",
    ]);
    for (const s of all) expect(s.expected.length, s.command).toBeGreaterThan(0);
  });

  for (const [n, s] of all.entries()) {
    it(`step ${n + 1}: \`${s.command}\` prints what the guide shows`, async () => {
      const r = await runCommand("bash", ["-c", s.command], { cwd: REPO_ROOT, timeoutMs: 120_000 });
      const text = r.combined.toString();
      const dir = /^files of this run: (\S+)$/m.exec(text)?.[1];
      if (dir) runDirs.push(dir);
      const unmet = s.expected.filter((line) => !pattern(line).test(text));
      expect(unmet, text).toEqual([]);
      // A failing verdict is the point of the mutant step; everything else exits 0.
      expect(r.code, text).toBe(s.command.includes("--mutant") ? 1 : 0);
      const page = /^sequence diagram, event ordering, state machines and files: (\S+)$/m.exec(text)?.[1];
      if (page) pages.push({ command: s.command, page });
    }, 150_000);
  }

  // The guide's last page: the demo run with /tasks/start dropped. What the guide says the reader sees
  // there: the violation counted in the header, a red ⚠ arrow with the rule's id under it, and the id
  // a link that lands on the rule's highlighted row in the contract's events.html.
  it.skipIf(noBrowser)("the broken run's page shows the violation and its rule's link lands on the entry", async () => {
    const broken = pages.find((p) => p.command.includes("SHIMLAB_EVENT_FAULTS"));
    expect(broken, "step 4 ran and printed its page").toBeDefined();
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
      await page.goto("file://" + broken!.page);
      expect(await page.locator("body").innerText()).toContain("1 MUST ordering violation");
      const arrow = page.locator("#diagram g.arrow.violation", { has: page.locator('a.rule-link[data-rule="events.exit-after-start"]') });
      expect(await arrow.locator("text:not(.time):not(.rule)").first().textContent()).toMatch(/^⚠ \/tasks\/exit id=demo-pod containerId=demo-pod/);
      await Promise.all([page.waitForURL(/events\.html#events\.exit-after-start$/, { timeout: 15_000 }), arrow.locator("a.rule-link text").first().click()]);
      const row = await page.evaluate(() => {
        const a = document.getElementById("events.exit-after-start");
        return { targeted: !!a && a.matches(":target"), text: a?.closest("tr")?.textContent ?? "" };
      });
      expect(row.targeted).toBe(true);
      expect(row.text).toContain("TaskExit follows its TaskStart");
    } finally {
      await browser.close();
    }
  }, 60_000);
});
