// A container's rootfs mounts through mount(2) (the addon), as containerd's
// runc shim makes them, with mount(8) kept for what needs its helpers: the
// options read as containerd's parseMountOptions reads them, and, as root, real
// mounts made and taken down.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { isMountPoint, mountAll, mountCall, unmountAll } from "../../src/pod/mount";
import { hasNative } from "../../src/native";

const MS_RDONLY = 1,
  MS_NOSUID = 2,
  MS_NODEV = 4,
  MS_NOEXEC = 8,
  MS_REMOUNT = 32,
  MS_BIND = 4096,
  MS_REC = 16384;

describe("a snapshot mount as mount(2) takes it", () => {
  it("overlay: no flags, every option the filesystem's data, in order", () => {
    expect(mountCall({ type: "overlay", source: "overlay", options: ["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"] })).toEqual({
      flags: 0,
      data: "index=off,workdir=/w,upperdir=/u,lowerdir=/l1:/l2",
      remount: 0,
    });
  });

  it("a read-only rbind is bound, then remounted read-only (a bind ignores other flags)", () => {
    expect(mountCall({ type: "bind", source: "/snap", options: ["rbind", "ro"] })).toEqual({ flags: MS_BIND | MS_REC | MS_RDONLY, data: "", remount: MS_REMOUNT | MS_BIND | MS_RDONLY });
    expect(mountCall({ type: "bind", source: "/snap", options: ["rbind", "rw"] })).toEqual({ flags: MS_BIND | MS_REC, data: "", remount: 0 });
  });

  it("flags set and cleared in order, the rest as data; an empty option is dropped", () => {
    expect(mountCall({ type: "tmpfs", source: "shm", options: ["noexec", "nosuid", "nodev", "", "mode=1777", "size=65536k", "exec"] })).toEqual({
      flags: MS_NOSUID | MS_NODEV,
      data: "mode=1777,size=65536k",
      remount: 0,
    });
    expect(mountCall({ type: "tmpfs", source: "t", options: ["ro", "rw", "noexec"] })?.flags).toBe(MS_NOEXEC);
  });

  it("mount(8) for a type that may need a helper, a propagation option, or data beyond a page", () => {
    expect(mountCall({ type: "fuse.sshfs", source: "h:/", options: [] })).toBeNull();
    expect(mountCall({ type: "nfs", source: "h:/x", options: ["vers=4"] })).toBeNull();
    expect(mountCall({ type: "bind", source: "/s", options: ["rbind", "rprivate"] })).toBeNull();
    expect(mountCall({ type: "overlay", source: "overlay", options: [`lowerdir=${"/x".repeat(2100)}`] })).toBeNull();
  });
});

const asRoot = process.getuid?.() === 0 && hasNative();

describe.skipIf(!asRoot)("as root: real mounts", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) {
      for (const m of ["bound", "t"]) await unmountAll(path.join(d, m)).catch(() => {});
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-mount-"));
    dirs.push(d);
    return d;
  };

  it("a tmpfs with flags and data, then unmounted", async () => {
    const d = tmp();
    const t = path.join(d, "t");
    await mountAll([{ type: "tmpfs", source: "shimlab-test", options: ["nosuid", "nodev", "mode=0710", "size=1m"] }], t);
    expect(isMountPoint(t)).toBe(true);
    expect((fs.statSync(t).mode & 0o777).toString(8)).toBe("710");
    const line = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => l.split(" ")[4] === t)!;
    expect(line.split(" ")[5].split(",")).toEqual(expect.arrayContaining(["rw", "nosuid", "nodev"]));
    expect(line).toMatch(/ - tmpfs shimlab-test .*size=1024k/);
    await unmountAll(t);
    expect(isMountPoint(t)).toBe(false);
  });

  it("a read-only bind is read-only; stacked mounts all come down; a failure names the mount", async () => {
    const d = tmp();
    fs.mkdirSync(path.join(d, "src"));
    fs.writeFileSync(path.join(d, "src", "f"), "x");
    const b = path.join(d, "bound");
    await mountAll([{ type: "bind", source: path.join(d, "src"), options: ["rbind", "ro"] }, { type: "tmpfs", source: "top", options: [] }], b);
    await unmountAll(b); // both: the tmpfs on top, then the bind
    expect(isMountPoint(b)).toBe(false);
    await mountAll([{ type: "bind", source: path.join(d, "src"), options: ["rbind", "ro"] }], b);
    expect(fs.readFileSync(path.join(b, "f"), "utf8")).toBe("x");
    expect(() => fs.writeFileSync(path.join(b, "g"), "y")).toThrow(/EROFS/);
    await unmountAll(b);
    await expect(mountAll([{ type: "overlay", source: "overlay", options: [`lowerdir=${path.join(d, "nope")}`] }], path.join(d, "t"))).rejects.toThrow(
      /^mount -t overlay -o lowerdir=\S*nope overlay \S*\/t: mount: (No such file or directory|Invalid argument)$/,
    );
  });
});
