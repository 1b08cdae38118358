// The pod network carried into a VM: what the host side plans from iproute2's
// JSON (interfaces, routes, taps, tc mirrors, QEMU NICs) and what the guest
// agent does with it through `ip`, against a fake `ip` and a fake sysfs.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { mirrorLines, planInterfaces, planRoutes, tapLines } from "../../src/hypervisor/qemu/network";
import { qemuArgs, type QemuSpec } from "../../src/hypervisor/qemu/cmdline";
import { GuestNetwork, parseIpAddrOneline, parseIpRoutes, runIpBatch } from "../../src/mock-agent/network";
import { ErrdefsError } from "../../src/errdefs";

// `ip -j addr show` in a pod namespace after CNI's bridge plugin (trimmed from a real one).
const LINKS = [
  { ifindex: 1, ifname: "lo", link_type: "loopback", address: "00:00:00:00:00:00", mtu: 65536, addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8, scope: "host" }] },
  {
    ifindex: 3,
    ifname: "eth0",
    link_type: "ether",
    address: "6a:1c:2e:00:11:22",
    mtu: 1500,
    addr_info: [
      { family: "inet", local: "10.200.7.5", prefixlen: 24, scope: "global" },
      { family: "inet6", local: "fe80::681c:2eff:fe00:1122", prefixlen: 64, scope: "link" },
    ],
  },
  { ifindex: 4, ifname: "tap0_kata", link_type: "ether", address: "aa:aa:aa:aa:aa:aa", mtu: 1500, addr_info: [{ family: "inet", local: "10.9.9.9", prefixlen: 32, scope: "global" }] },
  { ifindex: 5, ifname: "dummy0", link_type: "ether", address: "02:00:00:00:00:01", mtu: 1500, addr_info: [] },
];
const ROUTES = [
  { dst: "default", gateway: "10.200.7.1", dev: "eth0", flags: [] },
  { dst: "10.200.7.0/24", dev: "eth0", protocol: "kernel", scope: "link", prefsrc: "10.200.7.5", flags: [] },
  { dst: "10.50.0.0/16", dev: "dummy0", flags: [] },
];

describe("host side: planning the VM's network from the pod namespace", () => {
  it("carries addressed Ethernet links, not loopback, our own taps, unaddressed links or link-local addresses", () => {
    const { nics, interfaces } = planInterfaces(LINKS);
    // tap0_kata is taken (LINKS has one): the next free name.
    expect(nics).toEqual([{ hostIf: "eth0", tap: "tap1_kata", mac: "6a:1c:2e:00:11:22", mtu: 1500 }]);
    expect(interfaces).toEqual([{ device: "eth0", name: "eth0", mtu: 1500, hwAddr: "6a:1c:2e:00:11:22", IPAddresses: [{ family: 0, address: "10.200.7.5", mask: "24" }] }]);
  });

  it("names taps around any tapN_kata already in the namespace, so a failed attach never removes another's", () => {
    const two = [...LINKS, { ...LINKS[1], ifname: "eth1", address: "6a:1c:2e:00:11:33", addr_info: [{ family: "inet", local: "10.200.8.5", prefixlen: 24, scope: "global" }] }];
    expect(planInterfaces(two).nics.map((n) => `${n.hostIf}:${n.tap}`)).toEqual(["eth0:tap1_kata", "eth1:tap2_kata"]);
  });

  it("routes through carried devices only, with netlink scopes and an empty dest for default", () => {
    expect(planRoutes(ROUTES, 0, new Set(["eth0"]))).toEqual([
      { dest: "", gateway: "10.200.7.1", device: "eth0", source: "", scope: 0, family: 0 },
      { dest: "10.200.7.0/24", gateway: "", device: "eth0", source: "10.200.7.5", scope: 253, family: 0 },
    ]);
    expect(planRoutes([{ dst: "fe80::/64", dev: "eth0" }, { dst: "fd00::/64", dev: "eth0" }], 1, new Set(["eth0"]))).toEqual([
      { dest: "fd00::/64", gateway: "", device: "eth0", source: "", scope: 0, family: 1 },
    ]);
  });

  it("makes persistent taps and mirrors each veth and tap both ways", () => {
    const nics = [{ hostIf: "eth0", tap: "tap0_kata", mac: "6a:1c:2e:00:11:22", mtu: 1450 }];
    expect(tapLines(nics)).toEqual(["tuntap add dev tap0_kata mode tap", "link set dev tap0_kata mtu 1450 up"]);
    expect(mirrorLines(nics)).toEqual([
      "qdisc add dev eth0 ingress",
      "filter add dev eth0 parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev tap0_kata",
      "qdisc add dev tap0_kata ingress",
      "filter add dev tap0_kata parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev eth0",
    ]);
  });

  const spec: QemuSpec = { machine: "q35", accel: "tcg", memoryMb: 256, vcpus: 1, kernel: "/k", initrd: "/i", agentSocket: "/r/a", qmpSocket: "/r/q", consoleSocket: "/r/c" };

  it("gives QEMU a virtio-net NIC per tap with the veth's MAC (no option ROM on PCI)", () => {
    const a = qemuArgs({ ...spec, nics: [{ tap: "tap0_kata", mac: "6a:1c:2e:00:11:22" }] }).join(" ");
    expect(a).toContain("-netdev tap,id=network-0,ifname=tap0_kata,script=no,downscript=no");
    expect(a).toContain("-device virtio-net-pci,netdev=network-0,mac=6a:1c:2e:00:11:22,romfile=");
    const m = qemuArgs({ ...spec, machine: "microvm", nics: [{ tap: "tap0_kata", mac: "6a:1c:2e:00:11:22" }] });
    expect(m).toContain("virtio-net-device,netdev=network-0,mac=6a:1c:2e:00:11:22");
  });

  it("refuses a tap name or MAC that would break QEMU's option syntax", () => {
    expect(() => qemuArgs({ ...spec, nics: [{ tap: "tap0,x=y", mac: "6a:1c:2e:00:11:22" }] })).toThrow(/tap name/);
    expect(() => qemuArgs({ ...spec, nics: [{ tap: "tap0_kata", mac: "6a:1c:2e:00:11" }] })).toThrow(/MAC address/);
  });
});

describe("guest side: the agent's UpdateInterface and UpdateRoutes", () => {
  let dir: string;
  afterEach(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  /** A sysfs with these NICs, and an `ip` that records its calls and renames in the fake sysfs. */
  function fake(nics: Record<string, string>) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-net-"));
    for (const [n, mac] of Object.entries(nics)) {
      fs.mkdirSync(path.join(dir, n));
      fs.writeFileSync(path.join(dir, n, "address"), mac + "\n");
      fs.writeFileSync(path.join(dir, n, "mtu"), "1500\n");
    }
    const calls: string[] = [];
    const addrs: string[] = [];
    const ip = async (args: string[]) => {
      calls.push(args.join(" "));
      const i = args.indexOf("name");
      if (args[0] === "link" && i > 0) fs.renameSync(path.join(dir, args[3]), path.join(dir, args[i + 1]));
      if (args[1] === "addr" && args[2] === "add") addrs.push(`${args[5]} inet ${args[3]}`);
      if (args.join(" ") === "-o addr show") return addrs.map((a, k) => `${k + 2}: ${a.split(" ")[0]}    inet ${a.split(" ")[2]} scope global\\`).join("\n");
      return "";
    };
    return { net: new GuestNetwork({ ip, sysNet: dir, waitMs: 0 }), calls, dir };
  }

  it("finds the NIC by MAC, renames it, sets MTU and addresses, brings it and lo up", async () => {
    const { net, calls } = fake({ lo: "00:00:00:00:00:00", enp0s3: "6a:1c:2e:00:11:22" });
    const got = await net.updateInterface({ name: "eth0", hwAddr: "6A:1C:2E:00:11:22", mtu: 1450, IPAddresses: [{ family: 0, address: "10.200.7.5", mask: "24" }] });
    expect(calls).toEqual([
      "link set dev enp0s3 down",
      "link set dev enp0s3 name eth0",
      "link set dev eth0 mtu 1450",
      "addr flush dev eth0",
      "-4 addr add 10.200.7.5/24 dev eth0",
      "link set dev eth0 up",
      "link set dev lo up",
      "-o addr show",
    ]);
    expect(got.name).toBe("eth0");
    expect(got.IPAddresses).toEqual([{ family: 0, address: "10.200.7.5", mask: "24" }]);
  });

  it("runs only what differs: a NIC with its name and MTU already is not taken down, and lo already up is left", async () => {
    const { net, calls, dir } = fake({ lo: "00:00:00:00:00:00", eth0: "6a:1c:2e:00:11:22" });
    fs.writeFileSync(path.join(dir, "lo", "flags"), "0x9\n");
    fs.writeFileSync(path.join(dir, "eth0", "flags"), "0x1002\n");
    const got = await net.updateInterface({ name: "eth0", hwAddr: "6a:1c:2e:00:11:22", mtu: 1500, IPAddresses: [{ family: 0, address: "10.200.7.5", mask: "24" }] });
    expect(calls).toEqual(["addr flush dev eth0", "-4 addr add 10.200.7.5/24 dev eth0", "link set dev eth0 up", "-o addr show"]);
    expect(got.IPAddresses).toEqual([{ family: 0, address: "10.200.7.5", mask: "24" }]);
  });

  it("answers NotFound for a MAC no NIC has, InvalidArgument for bad input, and runs nothing then", async () => {
    const { net, calls } = fake({ eth0: "02:00:00:00:00:01" });
    const kind = (p: Promise<unknown>) => p.then(() => "ok", (e) => (e instanceof ErrdefsError ? e.kind : String(e)));
    expect(await kind(net.updateInterface({ name: "eth0", hwAddr: "02:00:00:00:00:99", IPAddresses: [] }))).toBe("NotFound");
    expect(await kind(net.updateInterface({ name: "eth0; rm -rf /", hwAddr: "02:00:00:00:00:01" }))).toBe("InvalidArgument");
    expect(await kind(net.updateInterface({ name: "eth0", hwAddr: "02:00:00:00:00:01", IPAddresses: [{ family: 0, address: "10.0.0.300", mask: "24" }] }))).toBe("InvalidArgument");
    expect(await kind(net.updateInterface({ name: "eth0", hwAddr: "02:00:00:00:00:01", IPAddresses: [{ family: 0, address: "10.0.0.3", mask: "33" }] }))).toBe("InvalidArgument");
    expect(await kind(net.updateInterface(undefined))).toBe("InvalidArgument");
    expect(await kind(net.updateRoutes([{ dest: "10.0.0.0/8", device: "eth9" }]))).toBe("NotFound");
    expect(await kind(net.updateRoutes([{ dest: "10.0.0.0/40", device: "eth0" }]))).toBe("InvalidArgument");
    expect(await kind(net.updateRoutes([{ dest: "", gateway: "nope", device: "eth0" }]))).toBe("InvalidArgument");
    expect(calls).toEqual([]);
  });

  it("replaces the named devices' routes, direct routes before gateway routes", async () => {
    const { net, calls } = fake({ eth0: "02:00:00:00:00:01" });
    await net.updateRoutes([
      { dest: "", gateway: "10.200.7.1", device: "eth0", family: 0 },
      { dest: "10.200.7.0/24", device: "eth0", source: "10.200.7.5", scope: 253, family: 0 },
    ]);
    const v4 = calls.filter((c) => !c.startsWith("-6"));
    expect(v4).toEqual([
      "-4 route flush dev eth0",
      "-4 route replace 10.200.7.0/24 dev eth0 src 10.200.7.5 scope link",
      "-4 route replace default via 10.200.7.1 dev eth0",
      "-4 route show",
    ]);
  });

  it("reads busybox ip's output back", () => {
    expect(parseIpAddrOneline("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n4: eth0    inet 10.200.7.5/24 brd 10.200.7.255 scope global eth0\\")).toEqual([
      { dev: "lo", family: 0, address: "127.0.0.1", mask: "8" },
      { dev: "eth0", family: 0, address: "10.200.7.5", mask: "24" },
    ]);
    expect(parseIpRoutes("default via 10.200.7.1 dev eth0 \n10.200.7.0/24 dev eth0 scope link  src 10.200.7.5 \nlocal 10.200.7.5 dev eth0\n", 0)).toEqual([
      { dest: "", gateway: "10.200.7.1", device: "eth0", source: "", scope: 0, family: 0, flags: 0, mtu: 0 },
      { dest: "10.200.7.0/24", gateway: "", device: "eth0", source: "10.200.7.5", scope: 253, family: 0, flags: 0, mtu: 0 },
    ]);
  });
});

describe("guest side: one shell for a batch of ip commands", () => {
  let dir = "";
  const path0 = process.env.PATH;
  afterEach(() => {
    process.env.PATH = path0;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  /** A stand-in `ip` on PATH: logs its argv one argument per line, prints "out:<args>", fails on "fail". */
  function fakeIp(): string {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "fake-ip-"));
    const log = path.join(dir, "log");
    fs.writeFileSync(
      path.join(dir, "ip"),
      `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a" >> ${log}; done; echo -- >> ${log}\ncase "$*" in *fail*) echo "RTNETLINK answers: File exists" >&2; exit 2;; esac\necho "out:$*"\n`,
      { mode: 0o755 },
    );
    process.env.PATH = `${dir}:${path0}`;
    return log;
  }

  it("runs each command once, in order, argv intact, and hands back each one's output", async () => {
    const log = fakeIp();
    const out = await runIpBatch(null)([{ args: ["link", "set", "dev", "eth0", "up"] }, { args: ["-o", "addr", "show"] }, { args: ["it's", "$(x) `y` \\z"] }]);
    expect(out).toEqual(["out:link set dev eth0 up\n", "out:-o addr show\n", "out:it's $(x) `y` \\z\n"]);
    expect(fs.readFileSync(log, "utf8").split("--\n").filter(Boolean)).toEqual(["link\nset\ndev\neth0\nup\n", "-o\naddr\nshow\n", "it's\n$(x) `y` \\z\n"]);
  });

  it("stops at the first failure and names it with what ip said; a command that may fail does not stop it", async () => {
    const log = fakeIp();
    const out = await runIpBatch(null)([{ args: ["-6", "route", "fail"], mayFail: true }, { args: ["route", "show"] }]);
    expect(out).toEqual(["", "out:route show\n"]);
    await expect(runIpBatch(null)([{ args: ["a"] }, { args: ["addr", "add", "fail"] }, { args: ["never"] }])).rejects.toThrow(/^ip addr add fail: RTNETLINK answers: File exists$/);
    expect(fs.readFileSync(log, "utf8")).not.toContain("never");
  });
});

describe("guest net.* sysctls", () => {
  // Each test's stand-in /proc/sys goes with it: every unit run used to leave two in /tmp.
  const made: string[] = [];
  afterEach(() => {
    for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  function procSys(files: Record<string, string>): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "procsys-"));
    made.push(d);
    for (const [k, v] of Object.entries(files)) {
      const f = path.join(d, ...k.split("."));
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, v);
    }
    return d;
  }

  it("sets a pod's net.* sysctls in the guest's namespace and leaves the rest to runc", () => {
    const d = procSys({ "net.ipv4.ip_unprivileged_port_start": "1024\n", "net.ipv4.ping_group_range": "1 0\n" });
    const net = new GuestNetwork({ procSys: d });
    const spec = { linux: { sysctl: { "net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647", "kernel.shm_rmid_forced": "1" }, namespaces: [{ type: "ipc" }] } };
    expect(net.takeNetSysctls(spec).sort()).toEqual(["net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range"]);
    expect(fs.readFileSync(path.join(d, "net/ipv4/ip_unprivileged_port_start"), "utf8")).toBe("0");
    expect(fs.readFileSync(path.join(d, "net/ipv4/ping_group_range"), "utf8")).toBe("0 2147483647");
    expect(spec.linux.sysctl).toEqual({ "kernel.shm_rmid_forced": "1" });
  });

  it("leaves them alone for a container with its own network namespace, and refuses what the guest lacks or a bad name", () => {
    const d = procSys({ "net.ipv4.ip_forward": "0" });
    const net = new GuestNetwork({ procSys: d });
    const own = { linux: { sysctl: { "net.ipv4.ip_forward": "1" }, namespaces: [{ type: "network" }] } };
    expect(net.takeNetSysctls(own)).toEqual([]);
    expect(own.linux.sysctl).toEqual({ "net.ipv4.ip_forward": "1" });
    expect(() => net.takeNetSysctls({ linux: { sysctl: { "net.ipv6.conf.all.forwarding": "1" } } })).toThrow(/guest kernel has no/);
    expect(() => net.takeNetSysctls({ linux: { sysctl: { "net.ipv4/../../x": "1" } } })).toThrow(/not a sysctl name/);
    expect(fs.readFileSync(path.join(d, "net/ipv4/ip_forward"), "utf8")).toBe("0");
  });
});
