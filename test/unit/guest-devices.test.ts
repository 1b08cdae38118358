// A privileged container in a VM: the shim keeps only the rule allowing every
// device and drops the host's device list; the guest's agent lists its own
// /dev in its place, as containerd lists the host's for runc.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { specToGrpc } from "../../src/agent/spec";
import { allowsAllDevices } from "../../src/oci/devices";
import { CreateContainerRequest } from "../../src/gen/grpc";
import { specFromGrpc } from "../../src/mock-agent/oci";
import { allowsEveryDevice, listDevices, withGuestDevices } from "../../src/mock-agent/devices";
import type { OciSpec } from "../../src/oci/spec";

// What containerd 1.6's CRI writes: its default deny-all rule, replaced for a privileged
// container by WithAllDevicesAllowed, and WithHostDevices' list of the host's nodes.
const DENY_ALL = { allow: false, access: "rwm" };
const ALLOW_ALL = { allow: true, access: "rwm" };
const HOST_DEVICES = [
  { path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { path: "/dev/kvm", type: "c", major: 10, minor: 232, fileMode: 0o660, uid: 0, gid: 108 },
  { path: "/dev/vda", type: "b", major: 254, minor: 0, fileMode: 0o660, uid: 0, gid: 6 },
];
const spec = (rules: object[], devices = HOST_DEVICES): OciSpec => ({
  ociVersion: "1.0.2",
  process: { args: ["sh"], cwd: "/", user: { uid: 0, gid: 0 } },
  root: { path: "rootfs" },
  linux: { resources: { devices: rules as never, memory: { limit: 1 << 24 } }, devices },
});

/** The spec as the guest's agent reads it: through the wire, as CreateContainer carries it. */
const overTheWire = (s: OciSpec, guest: boolean) =>
  specFromGrpc(CreateContainerRequest.decode(CreateContainerRequest.encode({ containerId: "c", OCI: specToGrpc(s, { guest, rootPath: "/run/r" }) })).OCI!);

describe("the rule allowing every device (Kata's rule_for_all_devices)", () => {
  it("is an allowing rule of any type and number with r, w and m, in each side's spelling of 'any'", () => {
    for (const r of [ALLOW_ALL, { ...ALLOW_ALL, type: "a" }, { ...ALLOW_ALL, major: -1, minor: -1 }, { ...ALLOW_ALL, major: 0, minor: 0 }, { ...ALLOW_ALL, access: "mrw" }]) {
      expect(allowsAllDevices(r), JSON.stringify(r)).toBe(true);
    }
  });

  it("is not a deny, a narrower type, number or access", () => {
    for (const r of [DENY_ALL, { ...ALLOW_ALL, type: "c" }, { ...ALLOW_ALL, major: 1 }, { ...ALLOW_ALL, minor: 3 }, { ...ALLOW_ALL, access: "rw" }, { allow: true }]) {
      expect(allowsAllDevices(r), JSON.stringify(r)).toBe(false);
    }
  });
});

describe("a privileged container's devices on their way to the guest", () => {
  it("in a VM the allow-all rule survives, alone, and the host's device list goes", () => {
    const g = specToGrpc(spec([DENY_ALL, ALLOW_ALL]), { guest: true, rootPath: "/run/r" });
    expect(g.Linux!.Resources!.Devices).toEqual([{ Allow: true, Type: "a", Major: -1, Minor: -1, Access: "rwm" }]);
    expect(g.Linux!.Devices).toEqual([]);
  });

  it("in a VM an unprivileged container's rules go (they number host devices), its listed devices stay", () => {
    const g = specToGrpc(spec([DENY_ALL, { allow: true, type: "c", major: 10, minor: 232, access: "rw" }]), { guest: true, rootPath: "/run/r" });
    expect(g.Linux!.Resources!.Devices).toEqual([]);
    expect(g.Linux!.Devices!.map((d) => d.Path)).toEqual(HOST_DEVICES.map((d) => d.path));
  });

  it("on the host agent nothing changes: rules and devices are the host's and mean what they say", () => {
    const g = specToGrpc(spec([DENY_ALL, ALLOW_ALL]), { guest: false, rootPath: "/run/r" });
    expect(g.Linux!.Resources!.Devices!.map((d) => [d.Allow, d.Access])).toEqual([
      [false, "rwm"],
      [true, "rwm"],
    ]);
    expect(g.Linux!.Devices).toHaveLength(HOST_DEVICES.length);
  });

  it("the guest's agent still reads it as privileged after the wire, and runc gets an allow-all rule", () => {
    const s = overTheWire(spec([DENY_ALL, ALLOW_ALL]), true);
    expect(allowsEveryDevice(s)).toBe(true);
    expect(s.linux!.resources!.devices).toEqual([{ allow: true, type: "a", major: -1, minor: -1, access: "rwm" }]);
    expect(s.linux!.devices).toBeUndefined();
    expect(allowsEveryDevice(overTheWire(spec([DENY_ALL]), true))).toBe(false);
  });

  it("the agent puts the guest's devices in the host's place", () => {
    const guestDevs = [{ path: "/dev/vport0p1", type: "c", major: 245, minor: 1, fileMode: 0o600, uid: 0, gid: 0 }];
    const s = withGuestDevices(overTheWire(spec([ALLOW_ALL]), true), guestDevs);
    expect(s.linux!.devices).toEqual(guestDevs);
    expect(s.linux!.resources!.devices).toHaveLength(1);
  });
});

describe("listing a /dev the way containerd's HostDevices does", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("finds this machine's /dev/null as c 1:3, mode 0666, and leaves out the console and pts", () => {
    const devs = listDevices("/dev");
    expect(devs.find((d) => d.path === "/dev/null")).toEqual({ path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 });
    expect(devs.some((d) => d.path === "/dev/console" || d.path.startsWith("/dev/pts/"))).toBe(false);
    for (const d of devs) expect(["c", "b"]).toContain(d.type);
  });

  it("keeps only device nodes: not files, fifos, symlinks, nor what is under pts, shm, fd or mqueue", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-devs-"));
    fs.writeFileSync(path.join(dir, "file"), "");
    execFileSync("mkfifo", [path.join(dir, "fifo")]);
    fs.symlinkSync("/dev/null", path.join(dir, "null-link"));
    for (const d of ["pts", "shm", "fd", "mqueue", "net"]) fs.mkdirSync(path.join(dir, d));
    // Device nodes need CAP_MKNOD; without it the listing is still checked for what it leaves out.
    const root = process.getuid?.() === 0;
    if (root) {
      for (const [p, t, mm] of [["pts/0", "c", "136 0"], ["shm/x", "c", "1 3"], ["net/tun", "c", "10 200"], ["loop0", "b", "7 0"]]) execFileSync("mknod", ["-m", "0640", path.join(dir, p), t, ...mm.split(" ")]);
    }
    const devs = listDevices(dir, "/dev").sort((a, b) => a.path.localeCompare(b.path));
    expect(devs).toEqual(
      root
        ? [
            { path: "/dev/loop0", type: "b", major: 7, minor: 0, fileMode: 0o640, uid: 0, gid: 0 },
            { path: "/dev/net/tun", type: "c", major: 10, minor: 200, fileMode: 0o640, uid: 0, gid: 0 },
          ]
        : [],
    );
  });
});
