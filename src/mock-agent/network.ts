// The guest's network, set the way kata-agent sets it: UpdateInterface finds
// the NIC by its MAC (the host gave it the pod veth's), renames it, sets its
// MTU and addresses and brings it up; UpdateRoutes replaces the routes of the
// devices it names; ListInterfaces/ListRoutes read it back. Said as `ip`
// commands, done over netlink from the agent itself (netlink-ip.ts), or by the
// guest's busybox ip where the native addon is missing.
import fs from "node:fs";
import path from "node:path";
import { run } from "./runtime/exec";
import type { Reaper } from "./reaper";
import type { Logger } from "../util/logger";
import type { Interface, InterfaceInit, Route, RouteInit } from "../gen/types";
import { failedPrecondition, internal, invalidArgument, notFound } from "../errdefs";
import { hasNative } from "../native";
import { netlinkIpBatch, scopeName, scopeNumber } from "./netlink-ip";

/** Runs `ip` with these arguments; its stdout. Swapped for a fake in tests. */
export type IpRunner = (args: string[]) => Promise<string>;

/** One `ip` of a batch; a failure of one that mayFail is ignored (its output is then ""). */
export interface IpCommand {
  args: string[];
  mayFail?: boolean;
}

/** Runs `ip` commands in order, stopping at the first that fails; the stdout of each. */
export type IpBatch = (cmds: IpCommand[]) => Promise<string[]>;

const ipError = (args: string[], why: string) => new Error(`ip ${args.join(" ")}: ${why.trim()}`);

/** The commands one after another through a runner: what a fake runner gets. */
export const ipBatchOf =
  (ip: IpRunner): IpBatch =>
  async (cmds) => {
    const out: string[] = [];
    for (const c of cmds) out.push(await (c.mayFail ? ip(c.args).catch(() => "") : ip(c.args)));
    return out;
  };

const MARK = "@@shimlab-ip@@";
const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The script runIpBatch gives one shell: each command's output after a marker line; the index
 * of the first that failed on stderr, after what it printed there.
 */
export function ipBatchScript(cmds: IpCommand[]): string {
  return cmds
    .map((c, i) => {
      const line = ["ip", ...c.args].map(shQuote).join(" ");
      return `echo ${MARK}${i}\n${c.mayFail ? `${line} 2>/dev/null` : `${line} || { echo ${MARK}${i} >&2; exit 1; }`}\n`;
    })
    .join("");
}

/**
 * The whole batch in one shell. Under TCG every command the agent (a Node process) runs costs its
 * spawn and a wait on its exit: UpdateInterface and UpdateRoutes, eight and four `ip` execs, set a
 * warm VM's network in ~0.6 s; as two batches, ~0.26 s (UpdateInterface's eight in ~0.15 s).
 */
export const runIpBatch =
  (reaper: Reaper | null): IpBatch =>
  async (cmds) => {
    const { code, stdout, stderr } = await run(reaper, "sh", ["-c", ipBatchScript(cmds)]);
    if (code !== 0) {
      const at = stderr.lastIndexOf(MARK);
      const failed = at >= 0 ? cmds[parseInt(stderr.slice(at + MARK.length), 10)] : undefined;
      throw failed ? ipError(failed.args, stderr.slice(0, at) || `exit ${code}`) : new Error(`ip batch: ${(stderr || `exit ${code}`).trim()}`);
    }
    const out = cmds.map(() => "");
    const parts = stdout.split(new RegExp(`^${MARK}(\\d+)\\n`, "m"));
    for (let k = 1; k + 1 < parts.length; k += 2) out[Number(parts[k])] = parts[k + 1];
    return out;
  };

const ADDR_SHOW = ["-o", "addr", "show"];

const IFNAME_RE = /^[A-Za-z0-9_.@-]{1,15}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const IPV6_RE = /^[0-9a-f:.]*:[0-9a-f:.]*$/i;

function checkIp(what: string, ip: string, family: number): void {
  if (!(family === 0 ? IPV4_RE : IPV6_RE).test(ip)) throw invalidArgument(`${what} ${JSON.stringify(ip)} is not an IPv${family === 0 ? 4 : 6} address`);
}

function checkCidr(what: string, cidr: string, family: number): void {
  const [ip, len, extra] = cidr.split("/");
  const max = family === 0 ? 32 : 128;
  if (extra !== undefined || (len !== undefined && !(/^\d+$/.test(len) && Number(len) <= max))) throw invalidArgument(`${what} ${JSON.stringify(cidr)}: want an address with an optional /0..${max}`);
  checkIp(what, ip, family);
}

export interface GuestNetworkOptions {
  /** Runs one `ip` at a time (a fake's way): the batches go through it in order. */
  ip?: IpRunner;
  /** Runs the batches (default: over netlink with the native addon, else one busybox shell each). */
  batch?: IpBatch;
  /** The agent's reaper, when it has one: `ip` and `sh` are then spawned as runc is (runtime/exec.ts). */
  reaper?: Reaper | null;
  /** /sys/class/net: where NICs are found by MAC. */
  sysNet?: string;
  /** /proc/sys: where net.* sysctls are written. */
  procSys?: string;
  /** How long a NIC may take to appear (coldplugged ones are there at once). */
  waitMs?: number;
  /** Debug lines: how long a hot-plugged NIC took to appear, and each `ip` batch. */
  logger?: Logger;
}

export class GuestNetwork {
  private readonly batch: IpBatch;
  private readonly sysNet: string;
  private readonly procSys: string;
  private readonly waitMs: number;
  private readonly log: Logger | undefined;

  constructor(o: GuestNetworkOptions = {}) {
    this.log = o.logger;
    this.batch = o.ip ? ipBatchOf(o.ip) : (o.batch ?? (hasNative() ? netlinkIpBatch() : runIpBatch(o.reaper ?? null)));
    this.sysNet = o.sysNet ?? "/sys/class/net";
    this.procSys = o.procSys ?? "/proc/sys";
    // A NIC hot-plugged into a running guest (a factory's warm VM) shows up some time after the shim
    // plugged it, under TCG most of all: Kata's agent waits for its device as long.
    this.waitMs = o.waitMs ?? 10_000;
  }

  /**
   * In the VM every container of the pod runs in the guest's own network
   * namespace (the spec's is dropped: the VM is the pod's network boundary),
   * which runc takes for the host's and refuses net.* sysctls in ("not
   * allowed in host network namespace"). The guest's namespace is the pod's,
   * so they are set there, as Kata's agent sets them, and taken out of the
   * spec runc gets. containerd 2.x's CRI adds two to every pod with a network
   * of its own (enable_unprivileged_ports, enable_unprivileged_icmp).
   */
  takeNetSysctls(spec: { linux?: { sysctl?: Record<string, string>; namespaces?: { type: string }[] } }): string[] {
    const sysctl = spec.linux?.sysctl;
    if (!sysctl || spec.linux?.namespaces?.some((n) => n.type === "network")) return [];
    const names = Object.keys(sysctl).filter((k) => k.startsWith("net."));
    for (const k of names) {
      if (!/^net(\.[A-Za-z0-9_-]+)+$/.test(k)) throw invalidArgument(`sysctl ${JSON.stringify(k)} is not a sysctl name`);
      const file = path.join(this.procSys, ...k.split("."));
      try {
        fs.writeFileSync(file, String(sysctl[k]));
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === "ENOENT") throw invalidArgument(`sysctl ${k}: the guest kernel has no ${file}`);
        throw failedPrecondition(`sysctl ${k}=${sysctl[k]} in the guest: ${err.message}`);
      }
      delete sysctl[k];
    }
    if (!Object.keys(sysctl).length) delete spec.linux!.sysctl;
    return names;
  }

  private readSys(dev: string, file: string): string {
    try {
      return fs.readFileSync(path.join(this.sysNet, dev, file), "utf8").trim();
    } catch {
      return "";
    }
  }

  private async linkByMac(mac: string): Promise<string> {
    const t0 = Date.now();
    const until = t0 + this.waitMs;
    for (;;) {
      const devs = fs.existsSync(this.sysNet) ? fs.readdirSync(this.sysNet) : [];
      const hit = devs.find((d) => this.readSys(d, "address").toLowerCase() === mac.toLowerCase());
      if (hit) {
        this.log?.debug("network interface found", { mac, dev: hit, waitedMs: Date.now() - t0 });
        return hit;
      }
      if (Date.now() >= until) throw notFound(`no network interface with MAC ${mac} in the guest (have: ${devs.join(", ") || "none"})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** IFF_UP in the link's sysfs flags. */
  private isUp(dev: string): boolean {
    return (parseInt(this.readSys(dev, "flags") || "0", 16) & 1) === 1;
  }

  private ipv6(): boolean {
    return fs.existsSync("/proc/sys/net/ipv6");
  }

  async updateInterface(i: InterfaceInit | undefined): Promise<Interface> {
    if (!i) throw invalidArgument("UpdateInterface needs an interface");
    const name = i.name ?? "";
    const mac = i.hwAddr ?? "";
    if (!IFNAME_RE.test(name)) throw invalidArgument(`interface name ${JSON.stringify(name)}: want 1-15 of [A-Za-z0-9_.@-]`);
    if (!MAC_RE.test(mac)) throw invalidArgument(`interface ${name}: hwAddr ${JSON.stringify(mac)} is not a MAC address`);
    const mtu = Number(i.mtu ?? 0);
    if (mtu && (mtu < 68 || mtu > 65535)) throw invalidArgument(`interface ${name}: MTU ${mtu} is out of range 68..65535`);
    const addrs = i.IPAddresses ?? [];
    for (const a of addrs) {
      const family = a.family ?? 0;
      if (family !== 0 && family !== 1) throw invalidArgument(`interface ${name}: address family ${family}`);
      checkIp(`interface ${name}: address`, a.address ?? "", family);
      const max = family === 0 ? 32 : 128;
      if (!/^\d+$/.test(a.mask ?? "") || Number(a.mask) > max) throw invalidArgument(`interface ${name}: mask ${JSON.stringify(a.mask)} of ${a.address}: want a prefix length 0..${max}`);
      if (family === 1 && !this.ipv6()) throw failedPrecondition(`interface ${name}: ${a.address} is IPv6, and the guest kernel has no IPv6`);
    }
    const dev = await this.linkByMac(mac);
    // Only what differs (under TCG each command costs): a NIC hot-plugged into a warm VM has its
    // name and MTU already, and the guest's init brought lo up.
    const cmds = interfaceCommands({ dev, name, mtu: mtu && this.readSys(dev, "mtu") !== String(mtu) ? mtu : 0, addrs, loUp: this.isUp("lo") });
    cmds.push(ADDR_SHOW);
    const t0 = Date.now();
    const out = await this.batch(cmds.map((args) => ({ args })));
    this.log?.debug("interface set up", { name, commands: cmds.length, ms: Date.now() - t0 });
    const now = this.interfaces(out[out.length - 1]).find((x) => x.name === name);
    if (!now) throw internal(`interface ${name} vanished after it was set up`);
    return now;
  }

  /** Replaces the routes of the devices named with these; direct routes go first, for the gateways to be reachable. */
  async updateRoutes(routes: RouteInit[]): Promise<Route[]> {
    for (const r of routes) {
      const family = r.family ?? 0;
      if (family !== 0 && family !== 1) throw invalidArgument(`route ${r.dest}: address family ${family}`);
      if (!IFNAME_RE.test(r.device ?? "")) throw invalidArgument(`route ${JSON.stringify(r.dest || "default")}: device ${JSON.stringify(r.device)} is not an interface name`);
      if (r.dest) checkCidr("route destination", r.dest, family);
      if (r.gateway) checkIp("route gateway", r.gateway, family);
      if (r.source) checkIp("route source", r.source, family);
      if (scopeName(r.scope ?? 0) === undefined) throw invalidArgument(`route ${r.dest || "default"}: scope ${r.scope}`);
      if (family === 1 && !this.ipv6()) throw failedPrecondition(`route ${r.dest || "default"} is IPv6, and the guest kernel has no IPv6`);
      if (!fs.existsSync(path.join(this.sysNet, r.device!))) throw notFound(`route ${r.dest || "default"}: no device ${r.device} in the guest`);
    }
    const cmds = routeCommands(routes, this.ipv6());
    const shows = this.routeShows();
    const t0 = Date.now();
    const out = await this.batch([...cmds, ...shows]);
    this.log?.debug("routes set up", { commands: cmds.length + shows.length, ms: Date.now() - t0 });
    return this.routes(out.slice(cmds.length));
  }

  /**
   * A warm VM's rehearsal of UpdateInterface's and UpdateRoutes' commands (mock-agent/rehearse.ts),
   * on `lo` in a network namespace of the rehearsal's own (netns, a path), over netlink: the
   * kernel's paths for an address added, a link brought up and routes replaced, and the agent's
   * code that asks for them, run once before a pod's NIC needs them. Nothing in the guest's own
   * namespace is touched.
   */
  async rehearseIn(netns: string, batchIn: (netns: string) => IpBatch = netlinkIpBatch): Promise<void> {
    const v6 = this.ipv6();
    const batch = batchIn(netns);
    const addrs = [{ family: 0, address: "10.9.0.2", mask: "24" }, ...(v6 ? [{ family: 1, address: "fd00:9::2", mask: "64" }] : [])];
    await batch([...interfaceCommands({ dev: "lo", name: "lo", mtu: 1500, addrs, loUp: true }), ADDR_SHOW].map((args) => ({ args })));
    const routes: RouteInit[] = [
      { dest: "10.9.0.0/24", device: "lo", source: "10.9.0.2", scope: 253, family: 0 },
      { dest: "", gateway: "10.9.0.1", device: "lo", family: 0 },
    ];
    await batch([...routeCommands(routes, v6), ...this.routeShows()]);
  }

  async listInterfaces(): Promise<Interface[]> {
    return this.interfaces((await this.batch([{ args: ADDR_SHOW }]))[0]);
  }

  private interfaces(addrShow: string): Interface[] {
    const addrs = parseIpAddrOneline(addrShow);
    const devs = fs.existsSync(this.sysNet) ? fs.readdirSync(this.sysNet).sort() : [];
    return devs.map((d) => ({
      device: d,
      name: d,
      IPAddresses: addrs.filter((a) => a.dev === d).map((a) => ({ family: a.family, address: a.address, mask: a.mask })),
      mtu: Number(this.readSys(d, "mtu")) || 0,
      hwAddr: this.readSys(d, "address"),
      devicePath: "",
      type: "",
      rawFlags: Number(this.readSys(d, "flags")) || 0,
    }));
  }

  async listRoutes(): Promise<Route[]> {
    return this.routes(await this.batch(this.routeShows()));
  }

  private routeShows(): IpCommand[] {
    return [{ args: ["-4", "route", "show"] }, ...(this.ipv6() ? [{ args: ["-6", "route", "show"], mayFail: true }] : [])];
  }

  /** The output of routeShows()' commands, parsed. */
  private routes(out: string[]): Route[] {
    return [...parseIpRoutes(out[0] ?? "", 0), ...(out.length > 1 ? parseIpRoutes(out[1], 1) : [])];
  }
}

/** `ip -o addr show` lines: "4: eth0    inet 192.0.2.2/24 brd ... scope global eth0\ ...". */
export function parseIpAddrOneline(text: string): { dev: string; family: number; address: string; mask: string }[] {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^\d+:\s+(\S+)\s+(inet6?)\s+([^/\s]+)\/(\d+)/.exec(line);
    if (m) out.push({ dev: m[1].replace(/@.*$/, ""), family: m[2] === "inet" ? 0 : 1, address: m[3], mask: m[4] });
  }
  return out;
}

/** `ip route show` lines: "default via 192.0.2.1 dev eth0", "192.0.2.0/24 dev eth0 scope link  src 192.0.2.2". */
export function parseIpRoutes(text: string, family: number): Route[] {
  const out: Route[] = [];
  for (const line of text.split("\n")) {
    const w = line.trim().split(/\s+/).filter(Boolean);
    if (!w.length) continue;
    // Typed routes (local, broadcast, unreachable...) are not the kind UpdateRoutes sets.
    if (/^(local|broadcast|unreachable|prohibit|blackhole|multicast|anycast|throw)$/.test(w[0])) continue;
    const r: Route = { dest: w[0] === "default" ? "" : w[0], gateway: "", device: "", source: "", scope: 0, family, flags: 0, mtu: 0 };
    for (let k = 1; k < w.length - 1; k++) {
      const v = w[k + 1];
      if (w[k] === "via") r.gateway = v;
      else if (w[k] === "dev") r.device = v;
      else if (w[k] === "src") r.source = v;
      else if (w[k] === "scope") r.scope = scopeNumber(v) ?? (Number(v) || 0);
      else if (w[k] === "mtu") r.mtu = Number(v) || 0;
      else continue;
      k++;
    }
    out.push(r);
  }
  return out;
}

/** UpdateInterface's commands for the link found as dev: a rename needs it down; mtu 0 leaves it; lo brought up unless it is. */
export function interfaceCommands(o: { dev: string; name: string; mtu: number; addrs: { family?: number; address?: string; mask?: string }[]; loUp: boolean }): string[][] {
  const cmds: string[][] = [];
  if (o.dev !== o.name) cmds.push(["link", "set", "dev", o.dev, "down"], ["link", "set", "dev", o.dev, "name", o.name]);
  if (o.mtu) cmds.push(["link", "set", "dev", o.name, "mtu", String(o.mtu)]);
  cmds.push(["addr", "flush", "dev", o.name]);
  for (const a of o.addrs) cmds.push([a.family === 1 ? "-6" : "-4", "addr", "add", `${a.address}/${a.mask}`, "dev", o.name]);
  cmds.push(["link", "set", "dev", o.name, "up"]);
  if (!o.loUp) cmds.push(["link", "set", "dev", "lo", "up"]);
  return cmds;
}

/** UpdateRoutes' commands: each device's routes flushed, then direct routes before those through a gateway, which need them. */
export function routeCommands(routes: RouteInit[], ipv6: boolean): IpCommand[] {
  const cmds: IpCommand[] = [];
  for (const dev of new Set(routes.map((r) => r.device!))) {
    cmds.push({ args: ["-4", "route", "flush", "dev", dev] });
    if (ipv6) cmds.push({ args: ["-6", "route", "flush", "dev", dev], mayFail: true });
  }
  const ordered = [...routes.filter((r) => !r.gateway), ...routes.filter((r) => r.gateway)];
  for (const r of ordered) {
    const args = [r.family === 1 ? "-6" : "-4", "route", "replace", r.dest || "default"];
    if (r.gateway) args.push("via", r.gateway);
    args.push("dev", r.device!);
    if (r.source) args.push("src", r.source);
    if (r.scope) args.push("scope", scopeName(r.scope)!);
    cmds.push({ args });
  }
  return cmds;
}
