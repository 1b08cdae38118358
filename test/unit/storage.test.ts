// A guest's sandbox storages (src/mock-agent/storage.ts): mount(2) from the agent's own process for
// what mount(2) takes as it comes, mount(8) for the rest; real mounts, as root, in a directory of
// this test's own (a tmpfs stands in for the 9p share, which only a VM has).
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { mountStorage } from "../../src/mock-agent/storage";
import { mountsBelow } from "../../src/util/mounts";
import { hasNative } from "../../src/native";
import { nullLogger } from "../../src/util/logger";
import type { Storage } from "../../src/gen/grpc";

const skip = process.getuid?.() !== 0 || !hasNative();
const storage = (o: Partial<Storage>): Storage => ({ driver: "ephemeral", driverOptions: [], source: "shm", fstype: "", options: [], mountPoint: "", shared: false, ...o });
/** The mount options and the filesystem's super options of a mount point, from mountinfo. */
function optionsOf(p: string): { mount: string[]; super: string[] } {
  const f = fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.split(" ")[4] === p)
    .at(-1)!
    .split(" ");
  const dash = f.indexOf("-");
  return { mount: f[5].split(","), super: f[dash + 3].split(",") };
}

describe.skipIf(skip)("a guest's sandbox storages", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-storage-"));
  });
  afterEach(() => {
    for (const m of mountsBelow(dir).sort((a, b) => b.length - a.length)) spawnSync("umount", ["-l", m]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("mounts through mount(2), flags as flags and the rest as the filesystem's data; the mount point made", async () => {
    const mp = path.join(dir, "a", "b");
    await mountStorage(storage({ mountPoint: mp, options: ["nosuid", "nodev", "ro", "size=1m", "mode=0750"] }), nullLogger);
    const o = optionsOf(mp);
    expect(o.mount).toEqual(expect.arrayContaining(["ro", "nosuid", "nodev"]));
    expect(o.super).toEqual(expect.arrayContaining(["size=1024k", "mode=750"]));
    expect(() => fs.writeFileSync(path.join(mp, "x"), "")).toThrow(/EROFS|read-only/);
  });

  it("refuses what it cannot mount with mount's words, and leaves nothing mounted", async () => {
    const mp = path.join(dir, "c");
    await expect(mountStorage(storage({ mountPoint: mp, fstype: "tmpfs", options: ["size=nonsense"] }), nullLogger)).rejects.toThrow(`mount -t tmpfs -o size=nonsense shm ${mp}: `);
    // a type mount(2) is not given (it may need a helper) goes to mount(8), which says what failed
    await expect(mountStorage(storage({ mountPoint: mp, fstype: "fuse.nosuch" }), nullLogger)).rejects.toThrow(/mount/);
    expect(mountsBelow(dir)).toEqual([]);
    await expect(mountStorage(storage({ mountPoint: "relative" }), nullLogger)).rejects.toThrow(/not absolute/);
    await expect(mountStorage(storage({ driver: "nfs", mountPoint: mp }), nullLogger)).rejects.toThrow(/not supported/);
  });
});
