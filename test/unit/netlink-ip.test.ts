// The agent's netlink `ip` (src/mock-agent/netlink-ip.ts) against the guest's own: busybox ip.
// Two network namespaces made here, each with one end of a veth pair named alike; the same
// commands in both, busybox ip in one and the agent's netlink in the other; then the same links,
// addresses and routes in both (read by busybox ip), and the same parse of what each printed.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { missing } from "../helpers/env";
import { findBusybox } from "../../src/harness/rootfs";
import { netlinkIpBatch, ipBytes, ipText, Rtnl, runIpCommand } from "../../src/mock-agent/netlink-ip";
import { GuestNetwork, parseIpAddrOneline, parseIpRoutes, type IpCommand } from "../../src/mock-agent/network";

const skip = missing("root", "busybox", "ip");

// IPv6 link-local addresses and their route are the kernel's own, made when a link's carrier comes
// up, at a moment of its choosing (and each end's address from its own MAC): left out of what is
// compared, in the states and in what each side printed.
const ownAddrs = (text: string) => parseIpAddrOneline(text).filter((a) => !a.address.startsWith("fe80:"));
const ownRoutes6 = (text: string) => parseIpRoutes(text, 1).filter((r) => !r.dest.startsWith("fe80:"));

describe("ip addresses as text and bytes", () => {
  it("reads and writes them as inet_pton and inet_ntop do", () => {
    for (const [s, want] of [
      ["10.200.7.5", "10.200.7.5"],
      ["fd00::5", "fd00::5"],
      ["fd00:0:0:0:0:0:0:5", "fd00::5"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["::", "::"],
      ["::1", "::1"],
      ["fe80::1:2", "fe80::1:2"],
      ["1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"],
      ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ] as const)
      expect(ipText(ipBytes(s, s.includes(":") ? 10 : 2))).toBe(want);
    for (const bad of ["1.2.3", "1.2.3.256", "1.2.3.4.5", "a.b.c.d"]) expect(() => ipBytes(bad, 2)).toThrow(/not an IPv4/);
    for (const bad of ["1::2::3", "12345::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "g::", "1:2:3:4::5:6:7:8"]) expect(() => ipBytes(bad, 10)).toThrow(/not an IPv6/);
  });
});

describe.skipIf(skip)("the agent's netlink ip, held to busybox ip (two network namespaces)", () => {
  const busybox = findBusybox()!;
  const tag = `nlip${process.pid}`;
  const nsA = `${tag}a`;
  const nsB = `${tag}b`;
  const sh = (...a: string[]) => execFileSync(a[0], a.slice(1), { encoding: "utf8" });
  /** busybox ip in namespace A (ip netns exec: its /sys is A's too). */
  const bb = (args: string[]) => {
    const r = spawnSync("ip", ["netns", "exec", nsA, busybox, "ip", ...args], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  /** busybox ip's view of a namespace: what the agent would read back. */
  const state = (ns: string) => {
    const q = (args: string[]) => spawnSync("ip", ["netns", "exec", ns, busybox, "ip", ...args], { encoding: "utf8" }).stdout;
    const links = q(["-o", "link", "show"])
      .split("\n")
      .filter(Boolean)
      .map((l) => /^\d+: ([^:@]+)[^<]*<([^>]*)> mtu (\d+)/.exec(l)!.slice(1).join(" "));
    return { links, addrs: ownAddrs(q(["-o", "addr", "show"])), v4: parseIpRoutes(q(["-4", "route", "show"]), 0), v6: ownRoutes6(q(["-6", "route", "show"])) };
  };
  /** The two namespaces' states, once the kernel's own IPv6 work (prefix and link-local routes, which come a moment after a link goes up) has settled in both. */
  const settled = async () => {
    let a = state(nsA);
    let b = state(nsB);
    for (let i = 0; i < 40 && JSON.stringify(a) !== JSON.stringify(b); i++) {
      await new Promise((r) => setTimeout(r, 50));
      a = state(nsA);
      b = state(nsB);
    }
    return { a, b };
  };
  const both = async (cmds: IpCommand[]) => {
    const viaBusybox: string[] = [];
    let busyboxError = "";
    for (const c of cmds) {
      try {
        viaBusybox.push(bb(c.args));
      } catch (e) {
        if (!c.mayFail) {
          busyboxError = (e as Error).message;
          break;
        }
        viaBusybox.push("");
      }
    }
    let netlinkError = "";
    const viaNetlink = await netlinkIpBatch(`/run/netns/${nsB}`)(cmds).catch((e: Error) => ((netlinkError = e.message), [] as string[]));
    return { viaBusybox, viaNetlink, busyboxError, netlinkError };
  };

  beforeEach(() => {
    sh("ip", "netns", "add", nsA);
    sh("ip", "netns", "add", nsB);
    // one veth pair, an end in each, both called nic0: the same device on both sides
    sh("ip", "link", "add", "nic0", "netns", nsA, "type", "veth", "peer", "name", "nic0", "netns", nsB);
  });
  afterEach(() => {
    for (const ns of [nsA, nsB]) spawnSync("ip", ["netns", "del", ns]);
  });

  it("UpdateInterface's commands: rename, MTU, addresses of both families, up; the same links and addresses after", async () => {
    const cmds: IpCommand[] = [
      { args: ["link", "set", "dev", "nic0", "down"] },
      { args: ["link", "set", "dev", "nic0", "name", "eth0"] },
      { args: ["link", "set", "dev", "eth0", "mtu", "1450"] },
      { args: ["addr", "flush", "dev", "eth0"] },
      { args: ["-4", "addr", "add", "10.200.7.5/24", "dev", "eth0"] },
      { args: ["-4", "addr", "add", "10.201.0.9/16", "dev", "eth0"] },
      { args: ["-6", "addr", "add", "fd00:1::5/64", "dev", "eth0"] },
      { args: ["link", "set", "dev", "eth0", "up"] },
      { args: ["link", "set", "dev", "lo", "up"] },
      { args: ["-o", "addr", "show"] },
    ];
    const r = await both(cmds);
    expect(r.busyboxError).toBe("");
    expect(r.netlinkError).toBe("");
    const { a: sa, b: sb } = await settled();
    expect(sb).toEqual(sa);
    expect(sb.links).toContain("eth0 BROADCAST,MULTICAST,UP,LOWER_UP 1450");
    // what each printed for `-o addr show`, parsed as GuestNetwork parses it
    const a = ownAddrs(r.viaBusybox.at(-1)!);
    expect(ownAddrs(r.viaNetlink.at(-1)!)).toEqual(a);
    expect(a).toEqual(expect.arrayContaining([{ dev: "eth0", family: 0, address: "10.200.7.5", mask: "24" }, { dev: "lo", family: 0, address: "127.0.0.1", mask: "8" }]));
    // a second UpdateInterface: the flush takes the old addresses, both families
    const again = await both([{ args: ["addr", "flush", "dev", "eth0"] }, { args: ["-4", "addr", "add", "10.9.0.1/8", "dev", "eth0"] }, { args: ["-o", "addr", "show"] }]);
    expect(again.netlinkError).toBe("");
    const after = await settled();
    expect(after.b).toEqual(after.a);
    expect(ownAddrs(again.viaNetlink[2]).filter((x) => x.dev === "eth0")).toEqual([{ dev: "eth0", family: 0, address: "10.9.0.1", mask: "8" }]);
  });

  it("UpdateRoutes' commands: flush both families, direct, host and gateway routes, scopes and sources; the same routes after", async () => {
    const setup: IpCommand[] = [
      { args: ["-4", "addr", "add", "10.200.7.5/24", "dev", "nic0"] },
      { args: ["-6", "addr", "add", "fd00:1::5/64", "dev", "nic0"] },
      { args: ["link", "set", "dev", "nic0", "up"] },
    ];
    expect((await both(setup)).netlinkError).toBe("");
    const cmds: IpCommand[] = [
      { args: ["-4", "route", "flush", "dev", "nic0"] },
      { args: ["-6", "route", "flush", "dev", "nic0"], mayFail: true },
      { args: ["-4", "route", "replace", "10.200.7.0/24", "dev", "nic0", "src", "10.200.7.5", "scope", "link"] },
      { args: ["-4", "route", "replace", "10.99.1.1", "dev", "nic0"] },
      { args: ["-4", "route", "replace", "default", "via", "10.200.7.1", "dev", "nic0"] },
      { args: ["-6", "route", "replace", "fd00:1::/64", "dev", "nic0"] },
      { args: ["-6", "route", "replace", "default", "via", "fd00:1::1", "dev", "nic0"] },
      { args: ["-4", "route", "show"] },
      { args: ["-6", "route", "show"], mayFail: true },
    ];
    const r = await both(cmds);
    expect(r.busyboxError).toBe("");
    expect(r.netlinkError).toBe("");
    const { a: sa, b: s } = await settled();
    expect(s).toEqual(sa);
    expect(s.v4).toEqual([
      { dest: "", gateway: "10.200.7.1", device: "nic0", source: "", scope: 0, family: 0, flags: 0, mtu: 0 },
      { dest: "10.99.1.1", gateway: "", device: "nic0", source: "", scope: 253, family: 0, flags: 0, mtu: 0 },
      { dest: "10.200.7.0/24", gateway: "", device: "nic0", source: "10.200.7.5", scope: 253, family: 0, flags: 0, mtu: 0 },
    ]);
    expect(parseIpRoutes(r.viaNetlink[7], 0)).toEqual(parseIpRoutes(r.viaBusybox[7], 0));
    expect(ownRoutes6(r.viaNetlink[8])).toEqual(ownRoutes6(r.viaBusybox[8]));
    // replacing again changes nothing and fails nothing
    const again = await both([cmds[4]]);
    expect([again.busyboxError, again.netlinkError]).toEqual(["", ""]);
    const after = await settled();
    expect(after.b).toEqual(after.a);
  });

  it("stops at the first command the kernel refuses, named with what it said; a command that may fail does not stop it; unknown words are refused", async () => {
    const r = await both([
      { args: ["-4", "addr", "add", "10.1.1.1/24", "dev", "nic0"] },
      { args: ["-6", "route", "flush", "dev", "nosuch0"], mayFail: true },
      { args: ["-4", "addr", "add", "10.1.1.1/24", "dev", "nic0"] },
      { args: ["link", "set", "dev", "nic0", "mtu", "1400"] },
    ]);
    expect(r.busyboxError).toMatch(/RTNETLINK answers: File exists/);
    expect(r.netlinkError).toBe("ip -4 addr add 10.1.1.1/24 dev nic0: RTNETLINK answers: File exists");
    // the command after the failure ran on neither side
    const { a: sa, b: sb } = await settled();
    expect(sb).toEqual(sa);
    expect(sb.links.find((l) => l.startsWith("nic0"))).toMatch(/ 1500$/);
    await expect(netlinkIpBatch(`/run/netns/${nsB}`)([{ args: ["link", "set", "dev", "nosuch0", "up"] }])).rejects.toThrow('ip link set dev nosuch0 up: Cannot find device "nosuch0"');
    await expect(netlinkIpBatch(`/run/netns/${nsB}`)([{ args: ["link", "delete", "nic0"] }])).rejects.toThrow(/not an ip command the agent's netlink speaks/);
    await expect(netlinkIpBatch(`/run/netns/${nsB}`)([{ args: ["-4", "route", "replace", "default", "via", "10.1.1.1", "dev", "nic0", "scope", "galaxy"] }])).rejects.toThrow(/unknown scope/);
    // a word the scope table's prototype knows is no scope either
    await expect(netlinkIpBatch(`/run/netns/${nsB}`)([{ args: ["-4", "route", "replace", "default", "dev", "nic0", "scope", "constructor"] }])).rejects.toThrow('unknown scope "constructor"');
    expect(state(nsB).links.some((l) => l.startsWith("nic0"))).toBe(true);
  });

  it("dumps the links once for a batch, again after its own rename, and finds a link the kernel added since", () => {
    const nl = new Rtnl(`/run/netns/${nsB}`);
    const linkDumps = () => dumps.filter((t) => t === 18 /* RTM_GETLINK */).length;
    const dumps: number[] = [];
    const talk = nl.talk.bind(nl);
    nl.talk = (type, flags, body) => (dumps.push(type), talk(type, flags, body));
    try {
      const run = (line: string) => runIpCommand(nl, line.split(" "));
      run("link set dev nic0 down");
      run("link set dev nic0 mtu 1450");
      run("addr flush dev nic0");
      run("-4 addr add 10.3.0.2/24 dev nic0");
      expect(linkDumps()).toBe(1);
      run("link set dev nic0 name eth0");
      // the old name is gone at once (a missing name costs one more dump, to be sure)
      expect(() => run("link set dev nic0 up")).toThrow('Cannot find device "nic0"');
      run("link set dev eth0 up");
      expect(linkDumps()).toBe(3);
      const before = linkDumps();
      sh("ip", "-n", nsB, "link", "add", "late0", "type", "veth", "peer", "name", "late1");
      run("link set dev late0 up");
      run("-4 addr add 10.4.0.2/24 dev late0");
      expect(linkDumps()).toBe(before + 1);
      expect(ownAddrs(run("-o addr show")).filter((a) => a.dev !== "lo")).toEqual([
        { dev: "eth0", family: 0, address: "10.3.0.2", mask: "24" },
        { dev: "late0", family: 0, address: "10.4.0.2", mask: "24" },
      ]);
      // up, with the MTU set before the rename (its peer in A is down: no carrier)
      expect(state(nsB).links.find((l) => l.startsWith("eth0 "))).toMatch(/^eth0 \S*\bUP\b\S* 1450$/);
    } finally {
      nl.close();
    }
  });

  it("a warm VM's rehearsal of UpdateInterface and UpdateRoutes: on lo, in the namespace it is given, and nowhere else", async () => {
    const before = state(nsA);
    await new GuestNetwork().rehearseIn(`/run/netns/${nsB}`);
    const q = (args: string[]) => spawnSync("ip", ["-n", nsB, ...args], { encoding: "utf8" }).stdout;
    expect(q(["-4", "-o", "addr", "show", "dev", "lo"])).toMatch(/inet 10\.9\.0\.2\/24 /);
    expect(q(["-6", "-o", "addr", "show", "dev", "lo"])).toMatch(/inet6 fd00:9::2\/64 /);
    expect(q(["link", "show", "dev", "lo"])).toMatch(/<LOOPBACK,UP,LOWER_UP> mtu 1500 /);
    const routes = parseIpRoutes(q(["-4", "route", "show"]), 0);
    expect(routes).toEqual(expect.arrayContaining([expect.objectContaining({ dest: "10.9.0.0/24", device: "lo", source: "10.9.0.2" }), expect.objectContaining({ dest: "", gateway: "10.9.0.1", device: "lo" })]));
    // the other namespace, standing in for the guest's own, is as it was
    expect(state(nsA)).toEqual(before);
  });
});
