// A VM's shares (src/util/mounts.ts): the bind mount(8) --bind made, with the propagation
// --make-rprivate / --make-rslave set, and umount -R's teardown, all through mount(2). Real
// mounts, as root, in a directory of this test's own; mountinfo says what the kernel made.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { bindMount, mountsBelow, unmountTree } from "../../src/util/mounts";
import { native, hasNative } from "../../src/native";

const skip = process.getuid?.() !== 0 || !hasNative();
const MS_SHARED = 1 << 20;

/** The optional fields of a mount point's mountinfo line: "shared:N", "master:N"... */
function propagationOf(p: string): string[] {
  const line = fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.split(" ")[4] === p)
    .at(-1);
  if (!line) throw new Error(`${p} is not mounted`);
  const f = line.split(" ");
  return f.slice(6, f.indexOf("-")).map((x) => x.replace(/:\d+$/, ""));
}

describe.skipIf(skip)("a VM's shares: binds and their teardown through mount(2)", () => {
  let dir: string;
  let src: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-bind-"));
    src = path.join(dir, "src");
    fs.mkdirSync(src);
    // a shared source, as a container's rootfs under containerd's (shared) mounts is
    native().mount("tmpfs", src, "tmpfs", 0, "size=1m");
    native().mount("", src, "", MS_SHARED, "");
    fs.writeFileSync(path.join(src, "file"), "x");
  });
  afterEach(() => {
    for (const m of mountsBelow(dir).sort((a, b) => b.length - a.length)) spawnSync("umount", ["-l", m]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("binds with the propagation asked for: private out of the source's peer group, slave under it; none joins it", () => {
    const t = (n: string) => (fs.mkdirSync(path.join(dir, n)), path.join(dir, n));
    bindMount(src, t("private"), "private");
    bindMount(src, t("slave"), "slave");
    bindMount(src, t("plain"));
    expect(fs.readFileSync(path.join(dir, "private", "file"), "utf8")).toBe("x");
    expect(propagationOf(path.join(dir, "private"))).toEqual([]);
    expect(propagationOf(path.join(dir, "slave"))).toEqual(["master"]);
    expect(propagationOf(path.join(dir, "plain"))).toEqual(["shared"]);
    // a mount made below the source later reaches the slave, not the private bind
    fs.mkdirSync(path.join(src, "later"));
    native().mount("tmpfs", path.join(src, "later"), "tmpfs", 0, "size=1m");
    expect(mountsBelow(path.join(dir, "slave"))).toContain(path.join(dir, "slave", "later"));
    expect(mountsBelow(path.join(dir, "private"))).toEqual([path.join(dir, "private")]);
  });

  it("a file onto a file; a missing source is refused with mount's words and leaves nothing", () => {
    const f = path.join(dir, "hosts");
    fs.writeFileSync(f, "");
    bindMount(path.join(src, "file"), f, "private");
    expect(fs.readFileSync(f, "utf8")).toBe("x");
    const t = path.join(dir, "t");
    fs.mkdirSync(t);
    expect(() => bindMount(path.join(dir, "nosuch"), t, "private")).toThrow(`mount --bind ${path.join(dir, "nosuch")} ${t}: `);
    expect(mountsBelow(t)).toEqual([]);
  });

  it("takes a bind down with everything mounted below it, deepest first; a busy one lazily", () => {
    const t = path.join(dir, "t");
    fs.mkdirSync(t);
    bindMount(src, t, "private");
    fs.mkdirSync(path.join(t, "a"));
    native().mount("tmpfs", path.join(t, "a"), "tmpfs", 0, "size=1m");
    fs.mkdirSync(path.join(t, "a", "b"));
    native().mount("tmpfs", path.join(t, "a", "b"), "tmpfs", 0, "size=1m");
    // a file held open below it: a plain umount is refused (EBUSY), the lazy one is not
    const fd = fs.openSync(path.join(t, "a", "b", "held"), "w");
    try {
      expect(mountsBelow(t)).toHaveLength(3);
      unmountTree(t);
      expect(mountsBelow(t)).toEqual([]);
      // the source is untouched
      expect(fs.readFileSync(path.join(src, "file"), "utf8")).toBe("x");
    } finally {
      fs.closeSync(fd);
    }
    // nothing mounted: nothing to do
    unmountTree(t);
  });
});
