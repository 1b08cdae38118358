// The kubelet's huge page limits in a guest: runc's names for the guest's
// page sizes, and the limits of sizes the guest lacks set aside (Kata's agent
// skips them the same way).
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { hugepageSizes, pageSizeName, splitHugepageLimits } from "../../src/mock-agent/hugepages";

describe("huge page sizes in a guest", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("names sizes as runc does: 64KB, 2MB, 1GB", () => {
    expect([64, 2048, 1048576, 32768].map(pageSizeName)).toEqual(["64KB", "2MB", "1GB", "32MB"]);
  });

  it("reads the kernel's sizes from sysfs, and none where the kernel has no huge pages", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-hugepages-"));
    for (const n of ["hugepages-2048kB", "hugepages-1048576kB", "not-a-size"]) fs.mkdirSync(path.join(dir, n));
    expect(hugepageSizes(dir).sort()).toEqual(["1GB", "2MB"]);
    expect(hugepageSizes(path.join(dir, "absent"))).toEqual([]);
  });

  it("keeps the limits of sizes the guest has and sets aside the others", () => {
    const limits = [
      { pageSize: "2MB", limit: 0 },
      { pageSize: "1GB", limit: 0 },
    ];
    expect(splitHugepageLimits(limits, ["2MB"])).toEqual({ kept: [limits[0]], dropped: [limits[1]] });
    expect(splitHugepageLimits(limits, [])).toEqual({ kept: [], dropped: limits });
    expect(splitHugepageLimits(limits, ["2MB", "1GB"])).toEqual({ kept: limits, dropped: [] });
  });
});
