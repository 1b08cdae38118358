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

describe("volumes with mounts below them, in a VM guest", () => {
  function volume() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gm-vol-"));
    fs.mkdirSync(path.join(dir, "tmpfs"));
    fs.mkdirSync(path.join(dir, "ro", "deeper"), { recursive: true });
    const real = fs.realpathSync(dir);
    const below = (d: string) =>
      d === real
        ? [
            { path: path.join(real, "tmpfs"), readOnly: false },
            { path: path.join(real, "ro"), readOnly: true },
            { path: path.join(real, "ro", "deeper"), readOnly: false },
          ]
        : [];
    return { dir, below };
  }
  const sharer = (calls: unknown[]) => ({ shareRootfs: async (k: string, p: string, o?: unknown) => (calls.push([k, p, o]), `/guest/${k}`) });

  it("mounts each host sub-mount again in place: a read-only volume leaves a writable tmpfs below it writable, as runc's rbind + ro does", async () => {
    const { dir, below } = volume();
    const calls: unknown[] = [];
    const spec = { ociVersion: "1.0.2", mounts: [{ destination: "/mnt", type: "bind", source: dir, options: ["rbind", "rprivate", "ro"] }] };
    const { spec: out, shares } = await guestMounts("c", spec as never, sharer(calls), below);
    // Each host mount shared by a plain bind of its own: an rbind's copies would pin the volume's directories on the host.
    const real = fs.realpathSync(dir);
    expect(calls).toEqual([
      ["c.m0", dir, { propagation: "private" }],
      ["c.m0.s0", path.join(real, "tmpfs"), { propagation: "private" }],
      ["c.m0.s1", path.join(real, "ro"), { propagation: "private" }],
      ["c.m0.s2", path.join(real, "ro", "deeper"), { propagation: "private" }],
    ]);
    expect(shares).toEqual(["c.m0", "c.m0.s0", "c.m0.s1", "c.m0.s2"]);
    expect(out.mounts).toEqual([
      { destination: "/mnt", type: "bind", source: "/guest/c.m0", options: ["rbind", "rprivate", "ro"] },
      { destination: "/mnt/tmpfs", type: "bind", source: "/guest/c.m0.s0", options: ["rbind", "rw", "rprivate"] },
      { destination: "/mnt/ro", type: "bind", source: "/guest/c.m0.s1", options: ["rbind", "ro", "rprivate"] },
      { destination: "/mnt/ro/deeper", type: "bind", source: "/guest/c.m0.s2", options: ["rbind", "rw", "rprivate"] },
    ]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("makes every sub-mount read-only for a recursive read-only volume (rro), and shares slave for rslave", async () => {
    const { dir, below } = volume();
    const calls: unknown[] = [];
    const spec = { ociVersion: "1.0.2", mounts: [{ destination: "/v", type: "bind", source: dir, options: ["rbind", "rslave", "rro"] }] };
    const { spec: out } = await guestMounts("c", spec as never, sharer(calls), below);
    expect(calls).toHaveLength(4);
    for (const c of calls) expect((c as unknown[])[2]).toEqual({ propagation: "slave" });
    expect(out.mounts!.slice(1).map((m) => m.options)).toEqual([
      ["rbind", "ro", "rslave"],
      ["rbind", "ro", "rslave"],
      ["rbind", "ro", "rslave"],
    ]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a plain (non-recursive) bind carries no sub-mounts, as on the host", async () => {
    const { dir, below } = volume();
    const calls: unknown[] = [];
    const spec = { ociVersion: "1.0.2", mounts: [{ destination: "/v", type: "bind", source: dir, options: ["bind"] }] };
    const { spec: out } = await guestMounts("c", spec as never, sharer(calls), below);
    expect(calls).toEqual([["c.m0", dir, { propagation: "private" }]]);
    expect(out.mounts).toHaveLength(1);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe("the mounts below a directory, from mountinfo", () => {
  it("lists strictly-below mount points outermost first, the top of a stack, and their read-only flag", async () => {
    const { subMounts } = await import("../../src/pod/mount");
    const mi = [
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw",
      "30 22 0:40 / /data rw,relatime shared:2 - tmpfs none rw",
      "31 30 0:41 / /data/a/b ro,relatime - tmpfs none rw",
      "32 30 0:42 / /data/a rw,relatime - tmpfs none rw",
      "33 30 0:43 / /data/x\\040y rw - tmpfs none rw",
      "34 32 0:44 / /data/a ro - tmpfs none rw",
      "35 22 0:45 / /database rw - tmpfs none rw",
    ].join("\n");
    expect(subMounts("/data", mi)).toEqual([
      { path: "/data/a", readOnly: true },
      { path: "/data/x y", readOnly: false },
      { path: "/data/a/b", readOnly: true },
    ]);
  });
});
