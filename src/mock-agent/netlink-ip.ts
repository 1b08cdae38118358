// The guest's `ip` commands, done over netlink from the agent's own process. Under TCG
// every process the agent starts costs a fork, an exec and page faults the emulator makes
// dear: the pod network's two `ip` batches took ~0.2 s of a warm pod's start even with their
// code translated ahead (rehearse.ts). This runs the same commands, in the small vocabulary
// GuestNetwork speaks (below), as the netlink requests busybox's ip makes, and prints what
// `ip -o addr show` and `ip route show` print, so that one parser reads both; a command
// outside that vocabulary is refused, never guessed at. test/unit/netlink-ip.test.ts holds
// it to busybox ip: the same commands in two network namespaces, the same state after.
import { native } from "../native";
import type { IpBatch, IpCommand } from "./network";

const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
const F_REQUEST = 0x1;
const F_ACK = 0x4;
const F_DUMP = 0x300;
const F_REPLACE = 0x100;
const F_EXCL = 0x200;
const F_CREATE = 0x400;
const IFF_UP = 0x1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_LABEL = 3;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PREFSRC = 7;
const RTA_METRICS = 8;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RTM_F_CLONED = 0x200;
const AF_INET = 2;
const AF_INET6 = 10;
const SCOPE_NUMBERS: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };
const SCOPE_NAMES: Record<number, string> = { 0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere" };
/** ip's name for a route or address scope; own keys only, so that no word resolves from the prototype. */
export const scopeName = (n: number): string | undefined => (Object.hasOwn(SCOPE_NAMES, n) ? SCOPE_NAMES[n] : undefined);
export const scopeNumber = (name: string): number | undefined => (Object.hasOwn(SCOPE_NUMBERS, name) ? SCOPE_NUMBERS[name] : undefined);
const ROUTE_TYPES = ["unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve"];

/** strerror's words for what the kernel answers these requests with; others by number. */
const ERRNO_TEXT: Record<number, string> = {
  1: "Operation not permitted",
  2: "No such file or directory",
  3: "No such process",
  13: "Permission denied",
  16: "Device or resource busy",
  17: "File exists",
  19: "No such device",
  22: "Invalid argument",
  34: "Numerical result out of range",
  95: "Operation not supported",
  97: "Address family not supported by protocol",
  99: "Cannot assign requested address",
  101: "Network is unreachable",
};

interface Attr {
  type: number;
  data: Buffer;
}

interface Msg {
  type: number;
  flags: number;
  body: Buffer;
}

function attr(type: number, data: Buffer): Buffer {
  const len = 4 + data.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  data.copy(b, 4);
  return b;
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const cstr = (s: string) => Buffer.from(s + "\0", "latin1");

function attrs(b: Buffer, from: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let o = from; o + 4 <= b.length; ) {
    const len = b.readUInt16LE(o);
    if (len < 4 || o + len > b.length) break;
    const type = b.readUInt16LE(o + 2) & 0x3fff;
    if (!out.has(type)) out.set(type, b.subarray(o + 4, o + len));
    o += (len + 3) & ~3;
  }
  return out;
}

/** IPv4 or IPv6 text to its bytes (4 or 16). */
export function ipBytes(s: string, family: number): Buffer {
  if (family === AF_INET) {
    const p = s.split(".");
    if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) throw new Error(`"${s}" is not an IPv4 address`);
    return Buffer.from(p.map(Number));
  }
  const halves = s.split("::");
  if (halves.length > 2) throw new Error(`"${s}" is not an IPv6 address`);
  const groups = (t: string) => (t ? t.split(":") : []);
  const parts = halves.map(groups);
  // an IPv4 tail (::ffff:192.0.2.1)
  const last = parts[parts.length - 1];
  if (last.at(-1)?.includes(".")) {
    const v4 = ipBytes(last.pop()!, AF_INET);
    last.push(v4.readUInt16BE(0).toString(16), v4.readUInt16BE(2).toString(16));
  }
  const fill = parts.length === 2 ? 8 - parts[0].length - parts[1].length : 0;
  const all = parts.length === 2 ? [...parts[0], ...Array<string>(Math.max(fill, 0)).fill("0"), ...parts[1]] : parts[0];
  if (all.length !== 8 || (parts.length === 2 && fill < 1) || all.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) throw new Error(`"${s}" is not an IPv6 address`);
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** Bytes to text as inet_ntop writes it (IPv6: the longest run of two or more zero groups as ::). */
export function ipText(b: Buffer): string {
  if (b.length === 4) return [...b].join(".");
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${[...b.subarray(12)].join(".")}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

export class NetlinkError extends Error {
  constructor(readonly errno: number) {
    super(`RTNETLINK answers: ${ERRNO_TEXT[errno] ?? `errno ${errno}`}`);
  }
}

/** One NETLINK_ROUTE socket and the requests busybox ip makes on it. */
export class Rtnl {
  private seq = Math.floor(Date.now() / 1000) & 0xffffff;
  private readonly fd: number;

  constructor(netns?: string) {
    this.fd = native().netlinkRoute(netns ?? null);
  }

  close(): void {
    native().closeFd(this.fd);
  }

  /** One request; its replies (a dump's messages), or a NetlinkError with the kernel's errno. */
  talk(type: number, flags: number, body: Buffer): Msg[] {
    const seq = ++this.seq;
    const h = Buffer.alloc(16);
    h.writeUInt32LE(16 + body.length, 0);
    h.writeUInt16LE(type, 4);
    h.writeUInt16LE(F_REQUEST | flags, 6);
    h.writeUInt32LE(seq, 8);
    const raw = native().netlinkTalk(this.fd, Buffer.concat([h, body]));
    const out: Msg[] = [];
    for (let o = 0; o + 16 <= raw.length; ) {
      const len = raw.readUInt32LE(o);
      if (len < 16 || o + len > raw.length) break;
      const t = raw.readUInt16LE(o + 4);
      const b = raw.subarray(o + 16, o + len);
      if (t === NLMSG_ERROR) {
        const err = -b.readInt32LE(0);
        if (err) throw new NetlinkError(err);
      } else if (t !== NLMSG_DONE) out.push({ type: t, flags: raw.readUInt16LE(o + 6), body: b });
      o += (len + 3) & ~3;
    }
    return out;
  }

  /** One dump's messages of `type`, with the attributes after their `headerLen`-byte header. */
  private dump(get: number, req: Buffer, type: number, headerLen: number): { body: Buffer; a: Map<number, Buffer> }[] {
    return this.talk(get, F_DUMP, req)
      .filter((m) => m.type === type)
      .map((m) => ({ body: m.body, a: attrs(m.body, headerLen) }));
  }

  /**
   * The links, dumped once for a batch (each dump is milliseconds under TCG), again after this
   * socket renamed one, or when a name or index is missing (a NIC the kernel has just added).
   */
  private linkCache: { index: number; name: string }[] | undefined;

  links(fresh = false): { index: number; name: string }[] {
    if (fresh || !this.linkCache)
      this.linkCache = this.dump(RTM_GETLINK, Buffer.alloc(16), RTM_NEWLINK, 16).map(({ body, a }) => ({
        index: body.readInt32LE(4),
        name: (a.get(IFLA_IFNAME) ?? Buffer.alloc(0)).toString("latin1").replace(/\0.*$/s, ""),
      }));
    return this.linkCache;
  }

  private linksKnowing(indexes: Iterable<number>): { index: number; name: string }[] {
    const known = new Set(this.links().map((l) => l.index));
    for (const i of indexes) if (!known.has(i)) return this.links(true);
    return this.links();
  }

  index(dev: string): number {
    const l = this.links().find((x) => x.name === dev) ?? this.links(true).find((x) => x.name === dev);
    if (!l) throw new Error(`Cannot find device "${dev}"`);
    return l.index;
  }

  setLink(dev: string, o: { up?: boolean; name?: string; mtu?: number }): void {
    const b = Buffer.alloc(16);
    b.writeInt32LE(this.index(dev), 4);
    if (o.up !== undefined) {
      b.writeUInt32LE(o.up ? IFF_UP : 0, 8);
      b.writeUInt32LE(IFF_UP, 12);
    }
    const extra: Buffer[] = [];
    if (o.name !== undefined) extra.push(attr(IFLA_IFNAME, cstr(o.name)));
    if (o.mtu !== undefined) extra.push(attr(IFLA_MTU, u32(o.mtu)));
    this.talk(RTM_NEWLINK, F_ACK, Buffer.concat([b, ...extra]));
    if (o.name !== undefined) this.linkCache = undefined;
  }

  addrs(family = 0): { family: number; prefix: number; scope: number; index: number; flags: number; local: Buffer | undefined; address: Buffer | undefined; label: Buffer | undefined; raw: Buffer }[] {
    const req = Buffer.alloc(8);
    req.writeUInt8(family, 0);
    return this.dump(RTM_GETADDR, req, RTM_NEWADDR, 8).map(({ body, a }) => ({
      family: body[0],
      prefix: body[1],
      flags: body[2],
      scope: body[3],
      index: body.readUInt32LE(4),
      local: a.get(IFA_LOCAL),
      address: a.get(IFA_ADDRESS),
      label: a.get(IFA_LABEL),
      raw: body,
    }));
  }

  addAddr(dev: string, family: number, address: string, prefix: number): void {
    const b = Buffer.alloc(8);
    const bytes = ipBytes(address, family);
    b.writeUInt8(family, 0);
    b.writeUInt8(prefix, 1);
    // as ip does: a 127/8 address is the host's
    b.writeUInt8(family === AF_INET && bytes[0] === 127 ? SCOPE_NUMBERS.host : 0, 3);
    b.writeUInt32LE(this.index(dev), 4);
    this.talk(RTM_NEWADDR, F_ACK | F_CREATE | F_EXCL, Buffer.concat([b, attr(IFA_LOCAL, bytes), attr(IFA_ADDRESS, bytes)]));
  }

  flushAddrs(dev: string): void {
    const index = this.index(dev);
    for (const a of this.addrs().filter((x) => x.index === index)) this.talk(RTM_DELADDR, F_ACK, a.raw);
  }

  routes(family: number): { family: number; dstLen: number; table: number; scope: number; type: number; flags: number; dst?: Buffer; gateway?: Buffer; oif?: number; prefsrc?: Buffer; mtu?: number; raw: Buffer }[] {
    const req = Buffer.alloc(12);
    req.writeUInt8(family, 0);
    return this.dump(RTM_GETROUTE, req, RTM_NEWROUTE, 12)
      .map(({ body, a }) => {
        const metrics = a.get(RTA_METRICS);
        return {
          family: body[0],
          dstLen: body[1],
          table: a.get(RTA_TABLE)?.readUInt32LE(0) ?? body[4],
          scope: body[6],
          type: body[7],
          flags: body.readUInt32LE(8),
          dst: a.get(RTA_DST),
          gateway: a.get(RTA_GATEWAY),
          oif: a.get(RTA_OIF)?.readInt32LE(0),
          prefsrc: a.get(RTA_PREFSRC),
          mtu: metrics ? attrs(metrics, 0).get(RTAX_MTU)?.readUInt32LE(0) : undefined,
          raw: body,
        };
      })
      .filter((r) => r.table === RT_TABLE_MAIN && !(r.flags & RTM_F_CLONED));
  }

  flushRoutes(family: number, dev: string): void {
    const index = this.index(dev);
    for (const r of this.routes(family).filter((x) => x.oif === index)) this.talk(RTM_DELROUTE, F_ACK, r.raw);
  }

  replaceRoute(family: number, r: { dest: string; gateway?: string; dev: string; src?: string; scope?: number }): void {
    const max = family === AF_INET ? 32 : 128;
    const [dst, len] = r.dest === "default" ? ["", "0"] : r.dest.split("/");
    const dstLen = len === undefined ? max : Number(len);
    if (!Number.isInteger(dstLen) || dstLen < 0 || dstLen > max) throw new Error(`invalid prefix length in "${r.dest}"`);
    const b = Buffer.alloc(12);
    b.writeUInt8(family, 0);
    b.writeUInt8(dstLen, 1);
    b.writeUInt8(RT_TABLE_MAIN, 4);
    b.writeUInt8(RTPROT_BOOT, 5);
    // ip's default scope: link for a route with no gateway, else the universe
    b.writeUInt8(r.scope ?? (r.gateway ? 0 : SCOPE_NUMBERS.link), 6);
    b.writeUInt8(RTN_UNICAST, 7);
    const extra: Buffer[] = [];
    if (dst) extra.push(attr(RTA_DST, ipBytes(dst, family)));
    if (r.gateway) extra.push(attr(RTA_GATEWAY, ipBytes(r.gateway, family)));
    extra.push(attr(RTA_OIF, u32(this.index(r.dev))));
    if (r.src) extra.push(attr(RTA_PREFSRC, ipBytes(r.src, family)));
    this.talk(RTM_NEWROUTE, F_ACK | F_CREATE | F_REPLACE, Buffer.concat([b, ...extra]));
  }

  /** `ip -o addr show`'s lines (what parseIpAddrOneline reads): by link, in the kernel's order. */
  addrShow(): string {
    const all = this.addrs();
    const links = this.linksKnowing(all.map((a) => a.index));
    const name = new Map(links.map((l) => [l.index, l.name]));
    const lines: string[] = [];
    for (const l of [...links].sort((x, y) => x.index - y.index))
      for (const a of all.filter((x) => x.index === l.index)) {
        const addr = a.local ?? a.address;
        if (!addr) continue;
        const label = a.family === AF_INET ? (a.label?.toString("latin1").replace(/\0.*$/s, "") ?? l.name) : "";
        lines.push(`${l.index}: ${name.get(a.index)}    ${a.family === AF_INET ? "inet" : "inet6"} ${ipText(addr)}/${a.prefix} scope ${scopeName(a.scope) ?? a.scope}${label ? ` ${label}` : ""}\\`);
      }
    return lines.map((l) => l + "\n").join("");
  }

  /** `ip route show`'s lines (what parseIpRoutes reads): the main table. */
  routeShow(family: number): string {
    const routes = this.routes(family);
    const name = new Map(this.linksKnowing(routes.flatMap((r) => (r.oif === undefined ? [] : [r.oif]))).map((l) => [l.index, l.name]));
    const max = family === AF_INET ? 32 : 128;
    return routes
      .map((r) => {
        const w: string[] = [];
        if (r.type !== RTN_UNICAST) w.push(ROUTE_TYPES[r.type] ?? String(r.type));
        w.push(!r.dst || r.dstLen === 0 ? (r.dstLen === 0 ? "default" : "") : r.dstLen === max ? ipText(r.dst) : `${ipText(r.dst)}/${r.dstLen}`);
        if (r.gateway) w.push("via", ipText(r.gateway));
        if (r.oif !== undefined) w.push("dev", name.get(r.oif) ?? String(r.oif));
        if (r.scope !== 0) w.push("scope", scopeName(r.scope) ?? String(r.scope));
        if (r.prefsrc) w.push("src", ipText(r.prefsrc));
        if (r.mtu) w.push("mtu", String(r.mtu));
        return w.filter(Boolean).join(" ") + "\n";
      })
      .join("");
  }
}

/** One command of GuestNetwork's vocabulary, done; its output. Anything else is refused. */
export function runIpCommand(nl: Rtnl, args: string[]): string {
  let family = 0;
  let a = args;
  if (a[0] === "-4" || a[0] === "-6") {
    family = a[0] === "-4" ? AF_INET : AF_INET6;
    a = a.slice(1);
  }
  const line = a.join(" ");
  let m: RegExpExecArray | null;
  if (line === "-o addr show" && !family) return nl.addrShow();
  if ((m = /^link set dev (\S+) (up|down)$/.exec(line)) && !family) return nl.setLink(m[1], { up: m[2] === "up" }), "";
  if ((m = /^link set dev (\S+) name (\S+)$/.exec(line)) && !family) return nl.setLink(m[1], { name: m[2] }), "";
  if ((m = /^link set dev (\S+) mtu (\d+)$/.exec(line)) && !family) return nl.setLink(m[1], { mtu: Number(m[2]) }), "";
  if ((m = /^addr flush dev (\S+)$/.exec(line)) && !family) return nl.flushAddrs(m[1]), "";
  if ((m = /^addr add ([^/\s]+)\/(\d+) dev (\S+)$/.exec(line)) && family) return nl.addAddr(m[3], family, m[1], Number(m[2])), "";
  if ((m = /^route flush dev (\S+)$/.exec(line)) && family) return nl.flushRoutes(family, m[1]), "";
  if (line === "route show" && family) return nl.routeShow(family);
  if ((m = /^route replace (\S+)((?: (?:via|dev|src|scope) \S+)+)$/.exec(line)) && family) {
    const o: Record<string, string> = {};
    const w = m[2].trim().split(" ");
    for (let k = 0; k < w.length; k += 2) {
      if (o[w[k]] !== undefined) throw new Error(`"${w[k]}" given twice`);
      o[w[k]] = w[k + 1];
    }
    if (!o.dev) throw new Error("a route needs a device");
    const scope = o.scope === undefined ? undefined : scopeNumber(o.scope);
    if (o.scope !== undefined && scope === undefined) throw new Error(`unknown scope "${o.scope}"`);
    return nl.replaceRoute(family, { dest: m[1], gateway: o.via, dev: o.dev, src: o.src, scope }), "";
  }
  throw new Error(`not an ip command the agent's netlink speaks: ip ${args.join(" ")}`);
}

/** GuestNetwork's batches over netlink: in order, stopping at the first failure (named as ip names it). */
export const netlinkIpBatch =
  (netns?: string): IpBatch =>
  async (cmds: IpCommand[]) => {
    const nl = new Rtnl(netns);
    try {
      const out: string[] = [];
      for (const c of cmds) {
        try {
          out.push(runIpCommand(nl, c.args));
        } catch (e) {
          if (!c.mayFail) throw new Error(`ip ${c.args.join(" ")}: ${(e as Error).message}`);
          out.push("");
        }
      }
      return out;
    } finally {
      nl.close();
    }
  };
