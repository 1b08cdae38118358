import { describe, it, expect } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { guestMounts } from "../../src/pod/guest-mounts";

describe("bind mounts for a VM guest", () => {
  it("shares host sources, turns the sandbox's /dev/shm into a guest tmpfs, leaves the rest", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gm-"));
    const hosts = path.join(dir, "hosts");
    fs.writeFileSync(hosts, "127.0.0.1 localhost\n");
    const shared: Array<[string, string]> = [];
    const sharer = { shareRootfs: async (k: string, p: string) => (shared.push([k, p]), `/guest/${k}`) };
    const spec = {
      ociVersion: "1.0.2",
      mounts: [
        { destination: "/proc", type: "proc", source: "proc" },
        { destination: "/etc/hosts", type: "bind", source: hosts, options: ["rbind", "ro"] },
        { destination: "/dev/shm", type: "bind", source: path.join(dir, "shm"), options: ["rbind"] },
        { destination: "/data", type: "none", source: path.join(dir, "missing"), options: ["bind"] },
        { destination: "/rel", type: "bind", source: "relative" },
      ],
    };
    const { spec: out, shares } = await guestMounts("c1", spec as never, sharer);
    expect(shares).toEqual(["c1.m1"]);
    expect(shared).toEqual([["c1.m1", hosts]]);
    expect(out.mounts).toEqual([
      spec.mounts[0],
      { destination: "/etc/hosts", type: "bind", source: "/guest/c1.m1", options: ["rbind", "ro"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      spec.mounts[3],
      spec.mounts[4],
    ]);
    expect(spec.mounts[1].source).toBe(hosts); // the caller's spec is left alone
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
