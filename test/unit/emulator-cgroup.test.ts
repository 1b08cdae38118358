// Two stand-ins at once (two copies of the suite, two demos) never share a cgroup parent.
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cgroupParentFor } from "../../src/harness/emulator";

describe("cgroupParentFor", () => {
  it("names a directory made straight in the temp dir after itself", () => {
    expect(cgroupParentFor(path.join(os.tmpdir(), "scn-Ab12Cd"))).toBe("/shimlab-scn-Ab12Cd");
  });

  it("tells apart two chosen directories of the same name by their parents", () => {
    const a = cgroupParentFor(path.join(os.tmpdir(), "shimlab-demo-AAAAAA", "containerd"));
    const b = cgroupParentFor(path.join(os.tmpdir(), "shimlab-demo-BBBBBB", "containerd"));
    expect(a).toBe("/shimlab-shimlab-demo-AAAAAA-containerd");
    expect(a).not.toBe(b);
  });
});
