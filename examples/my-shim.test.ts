// The worked example of docs/api.md, run by shimlab's own suite as it is
// written here and, from `npm pack`'s tarball, in an empty project
// (test/integration/package.test.ts). Point MY_SHIM at your shim binary;
// without it, shimlab's own shim is the one tested. Needs root, busybox,
// runc and (for the last block) containerd.
import path from "node:path";
import { describe, it, expect } from "vitest";
import { conformance, SHIM_BINARY } from "shimlab";
import { useContainerd, useShim } from "shimlab/vitest";

const SHIM = process.env.MY_SHIM ?? SHIM_BINARY;
// containerd finds containerd-shim-<name>-<version> on its PATH for runtime io.containerd.<name>.<version>.
const RUNTIME = path.basename(SHIM).replace(/^containerd-shim-(.+)-(v\d+)$/, "io.containerd.$1.$2");

describe("my shim, driven as containerd drives it (no containerd needed)", () => {
  // start, Create/Start/Wait/Delete over the shim's socket, its events, then `delete`;
  // after each test: no process of this shim left.
  const shim = useShim({ binary: SHIM });

  it("runs a container and reports its exit code and output", async () => {
    const r = await shim.emu.ctrRun("hello", shim.rootfs, ["sh", "-c", "echo hello; exit 7"]);
    expect(r.stdout).toBe("hello\n");
    expect(r.exitStatus).toBe(7);
  });

  it("publishes TaskExit for it, as containerd sees it", async () => {
    await shim.emu.ctrRun("bye", shim.rootfs, ["/bin/true"]);
    const exits = shim.emu.events.events.filter((e) => e.topic === "/tasks/exit" && e.event.id === "bye");
    // proto3 leaves zero values out of the decoded event
    expect(exits.map((e) => e.event.exitStatus ?? 0)).toEqual([0]);
  });

  it("passes shimlab's conformance checks on Kill", async () => {
    const report = await conformance.runSuite({ shim: SHIM, profile: conformance.guessProfile(SHIM), only: /^kill-/ });
    expect(report.checks.length).toBeGreaterThan(3);
    expect(report.checks.filter((c) => c.status === "fail").map((c) => `${c.name}: ${c.detail}`)).toEqual([]);
  }, 120_000);
});

describe("my shim under a real containerd", () => {
  // A private containerd (own root, state, socket and config) for this block, stopped after it.
  const c = useContainerd({ shimBinDir: path.dirname(SHIM) });

  it("ctr run --rm prints and exits as the container did", async () => {
    const r = await c.ctd.ctr(["run", "--rm", "--runtime", RUNTIME, "--rootfs", c.rootfs, "ex1", "/bin/sh", "-c", "echo from-ctr; exit 3"]);
    expect(r.out).toBe("from-ctr\n");
    expect(r.code).toBe(3);
  });
});
