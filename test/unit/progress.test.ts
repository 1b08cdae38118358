// Progress on stderr: plain lines at most once per interval off a terminal (CI logs), one
// rewritten line on a terminal; and the spec counts read from critest's (ginkgo's) output.
import { describe, it, expect } from "vitest";
import { GinkgoCounter, Progress } from "../../src/harness/progress";

function sink(isTTY: boolean) {
  const s = { text: "", isTTY, write: (x: string) => ((s.text += x), true) };
  return s;
}

describe("Progress", () => {
  it("off a terminal prints steps always and a status at most once per interval, without carriage returns", () => {
    let t = 0;
    const out = sink(false);
    const p = new Progress("kernel", { stream: out, intervalMs: 30_000, heartbeatMs: 0, now: () => t });
    p.line("unpacking");
    p.status("compiled 10 objects");
    t = 10_000;
    p.status("compiled 20 objects"); // too soon: dropped
    t = 31_000;
    p.status("compiled 90 objects");
    p.done("built");
    expect(out.text).toBe("kernel: unpacking\nkernel: compiled 10 objects\nkernel: compiled 90 objects\nkernel: built\n");
  });

  it("on a terminal rewrites one status line and clears it before the next step", () => {
    let t = 0;
    const out = sink(true);
    const p = new Progress("image", { stream: out, heartbeatMs: 0, now: () => t });
    p.status("10%");
    t = 1;
    p.status("20%");
    p.line("snapshot");
    p.done();
    expect(out.text).toBe("\r\x1b[Kimage: 10%\r\x1b[Kimage: 20%\r\x1b[Kimage: snapshot\n");
  });

  it("says the last step still runs when nothing was said for the heartbeat's time", async () => {
    let t = 0;
    const out = sink(false);
    const p = new Progress("critest", { stream: out, heartbeatMs: 20, intervalMs: 0, now: () => t });
    p.line("running");
    t = 100_000;
    await new Promise((r) => setTimeout(r, 60));
    p.done();
    expect(out.text).toMatch(/^critest: running\ncritest: still running \(100 s\)\n/);
  });
});

describe("GinkgoCounter", () => {
  // The shape of critest 1.37's parallel output (containerd-1.6-runc.log), cut at awkward places.
  const log = [
    "critest version: 1.37.0",
    "Running Suite: CRI validation - /tmp/x",
    "Will run 136 of 142 specs",
    "Running in parallel across 4 processes",
    "------------------------------",
    "• [FAILED] [0.022 seconds]",
    "[k8s.io] Idempotence StopPodSandbox [It] should not return an error if not found",
    "  STEP: stop not existing sandbox @ 12/06/26 06:04:15.647",
    "••",
    "• [0.444 seconds]",
    "•S••••••SSSSSSSSSSSSS•••",
    "SSSS",
    "Summarizing 1 Failure:",
    "  [FAIL] [k8s.io] Idempotence StopPodSandbox",
    "Ran 14 of 142 Specs in 21.798 seconds",
    "",
  ].join("\n");

  it("counts every spec's mark, failures and skips as the output streams in", () => {
    const g = new GinkgoCounter();
    for (let i = 0; i < log.length; i += 7) g.feed(log.slice(i, i + 7));
    expect({ total: g.total, ran: g.ran, failed: g.failed, skipped: g.skipped }).toEqual({ total: 142, ran: 14, failed: 1, skipped: 18 });
    expect(g.summary()).toBe("32/142 specs: 14 ran, 1 failed, 18 skipped");
  });
});

describe("critest's progress", () => {
  it("reports each phase and the spec counts of a run as its output streams (a stand-in critest)", async () => {
    const fs = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    const { critest } = await import("../../src/harness/critest/run");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-progress-unit-"));
    try {
      // Prints ginkgo's default output in pieces, "•" split across two writes, and writes the JSON report.
      const report = JSON.stringify([{ SpecReports: [{ ContainerHierarchyTexts: ["[k8s.io] A"], LeafNodeText: "works", LeafNodeType: "It", State: "passed" }] }]);
      const script = path.join(dir, "critest");
      fs.writeFileSync(
        script,
        `#!/bin/sh
for a in "$@"; do case "$a" in -ginkgo.json-report=*) out="\${a#-ginkgo.json-report=}";; esac; done
printf '%s' '${report}' > "$out"
printf 'Will run 3 of 5 specs\\n------------------------------\\n'
printf '\\342\\200'; sleep 0.1; printf '\\242\\342\\200\\242\\n'; sleep 0.2
printf '\\342\\200\\242 [FAILED] [0.1 seconds]\\nSS\\n'
`,
        { mode: 0o755 },
      );
      const lines: string[] = [];
      const out = { write: (s: string) => lines.push(s), isTTY: false };
      const progress = new Progress("critest x", { stream: out, intervalMs: 0, heartbeatMs: 0 });
      const run = await critest({ binaries: { critest: script, ginkgo: script } as never, socket: "/nowhere.sock", handler: "h", reportDir: dir, name: "x", leftOut: [], progress, readyTimeoutMs: 0, lock: path.join(dir, "lock") });
      expect(run.exitCode).toBe(0);
      const text = lines.join("");
      expect(text).toContain("critest x: dry run (checking the spec selection) on handler h\n");
      expect(text).toContain("critest x: running on handler h; log ");
      // A status while it runs (how many specs it has seen depends on how the pipe's chunks fell).
      expect(text).toMatch(/critest x: [2-5]\/5 specs: [2-3] ran, [01] failed, [0-2] skipped \(\d+ s\)\ncritest x: exit/);
      expect(text).toMatch(/critest x: exit 0 after \d+ s: 5\/5 specs: 3 ran, 1 failed, 2 skipped\n$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
