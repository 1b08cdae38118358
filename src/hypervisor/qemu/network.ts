// The pod's network inside its VM, Kata's default "tcfilter" model: CNI has put
// a veth (eth0, an address, routes) in the pod's network namespace; the shim
// adds a tap beside each such interface and mirrors every frame both ways with
// tc (ingress qdisc + u32 match-all + mirred redirect), QEMU runs inside the
// namespace with a virtio-net NIC on the tap carrying the veth's MAC, and the
// agent gives the guest's NIC the veth's name, addresses and routes
// (UpdateInterface, UpdateRoutes). Nothing is bridged or NATed on the host:
// the pod's IP answers from inside the guest.
import { execFile } from "node:child_process";
import type { InterfaceInit, RouteInit } from "../../gen/types";
import { unavailable } from "../../errdefs";
import type { Logger } from "../../util/logger";
import { detachCommands, mirrorLines, tapLines, type PodNic } from "./tap-commands";

export { detachCommands, mirrorLines, tapLines, type PodNic } from "./tap-commands";

export interface PodNetworkPlan {
  netns: string;
  nics: PodNic[];
  /** What the agent is told, in the kata API's shape. */
  interfaces: InterfaceInit[];
  routes: RouteInit[];
}

/** iproute2's `ip -j addr show` entries, the fields read here. */
interface IpLink {
  ifname: string;
  link_type?: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  scope?: string;
  type?: string;
  protocol?: string;
}

/** Netlink route scopes (rtnetlink.h), as the kata API carries them. */
const SCOPES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };

/** Kata's names for the taps: tap0_kata, tap1_kata... */
export function tapName(i: number): string {
  return `tap${i}_kata`;
}

const TAP_RE = /^tap\d+_kata$/;

/**
 * The interfaces to carry into the guest: Ethernet links with at least one address that is neither
 * link-local nor host-scoped (the guest makes its own link-local ones). Loopback and our own taps
 * stay behind.
 */
export function planInterfaces(links: IpLink[]): { nics: PodNic[]; interfaces: InterfaceInit[] } {
  const nics: PodNic[] = [];
  const interfaces: InterfaceInit[] = [];
  // A tap name nothing in the namespace has: a failed attach removes the taps it planned, never another's.
  const taken = new Set(links.map((l) => l.ifname));
  let next = 0;
  const freeTap = () => {
    while (taken.has(tapName(next))) next++;
    return tapName(next++);
  };
  for (const l of links) {
    if (l.link_type !== "ether" || !l.address || TAP_RE.test(l.ifname)) continue;
    const addrs = (l.addr_info ?? []).filter((a) => (a.family === "inet" || a.family === "inet6") && a.scope !== "link" && a.scope !== "host");
    if (!addrs.length) continue;
    const mtu = l.mtu ?? 1500;
    nics.push({ hostIf: l.ifname, tap: freeTap(), mac: l.address, mtu });
    interfaces.push({
      device: l.ifname,
      name: l.ifname,
      mtu,
      hwAddr: l.address,
      IPAddresses: addrs.map((a) => ({ family: a.family === "inet" ? 0 : 1, address: a.local, mask: String(a.prefixlen) })),
    });
  }
  return { nics, interfaces };
}

/**
 * The routes through carried interfaces, for UpdateRoutes. The kernel's own routes for an address's
 * subnet are included: the agent replaces the guest's table with exactly this list, as Kata's does.
 */
export function planRoutes(routes: IpRoute[], family: 0 | 1, devices: Set<string>): RouteInit[] {
  const out: RouteInit[] = [];
  for (const r of routes) {
    if (!r.dev || !devices.has(r.dev)) continue;
    if (r.type && r.type !== "unicast") continue;
    if (family === 1 && /^(fe80|ff[0-9a-f]{2}):/i.test(r.dst)) continue;
    out.push({
      dest: r.dst === "default" ? "" : r.dst,
      gateway: r.gateway ?? "",
      device: r.dev,
      source: r.prefsrc ?? "",
      scope: SCOPES[r.scope ?? "global"] ?? 0,
      family,
    });
  }
  return out;
}

/** Interface names go into batch files and QEMU options: only what Linux and those parsers take safely. */
function checkName(n: string): string {
  if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(n)) throw unavailable(`pod network: interface name ${JSON.stringify(n)} cannot be carried into the VM`);
  return n;
}

function inNetns(netns: string, cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile("nsenter", [`--net=${netns}`, "--", cmd, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(" ")} in ${netns}: ${(stderr || err.message).trim()}`)) : resolve(stdout),
    );
    // EPIPE when the command exits without reading (nsenter into a namespace that is gone): the
    // exit status says why, and an 'error' with no listener would end the shim
    child.stdin?.on("error", () => {});
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Reads the namespace CNI filled and plans what the VM gets. */
export async function scanPodNetwork(netns: string): Promise<PodNetworkPlan> {
  const links = JSON.parse(await inNetns(netns, "ip", ["-j", "addr", "show"])) as IpLink[];
  const { nics, interfaces } = planInterfaces(links);
  for (const n of nics) checkName(n.hostIf);
  const devices = new Set(nics.map((n) => n.hostIf));
  const routes = [
    ...planRoutes(JSON.parse(await inNetns(netns, "ip", ["-j", "-4", "route", "show"])) as IpRoute[], 0, devices),
    ...(interfaces.some((i) => i.IPAddresses?.some((a) => a.family === 1))
      ? planRoutes(JSON.parse(await inNetns(netns, "ip", ["-j", "-6", "route", "show"])) as IpRoute[], 1, devices)
      : []),
  ];
  return { netns, nics, interfaces, routes };
}

/** Makes the taps and the mirrors; undone by detachPodNetwork, or by the namespace going away. */
export async function attachPodNetwork(plan: PodNetworkPlan, logger: Logger): Promise<void> {
  if (!plan.nics.length) return;
  try {
    await inNetns(plan.netns, "ip", ["-batch", "-"], tapLines(plan.nics).join("\n") + "\n");
    await inNetns(plan.netns, "tc", ["-batch", "-"], mirrorLines(plan.nics).join("\n") + "\n");
  } catch (e) {
    await detachPodNetwork(plan, logger);
    throw unavailable(`pod network: ${(e as Error).message}`);
  }
  logger.info("pod network mirrored into the VM", { netns: plan.netns, nics: plan.nics.map((n) => `${n.hostIf}<->${n.tap} ${n.mac}`).join(", ") });
}

/** Runs detachCommands; quiet when the namespace (or a device) is gone already. */
export async function detachPodNetwork(plan: Pick<PodNetworkPlan, "netns" | "nics">, logger?: Logger): Promise<void> {
  for (const [cmd, ...args] of detachCommands(plan.nics)) {
    await inNetns(plan.netns, cmd, args).catch((e) => logger?.debug("pod network teardown", { error: (e as Error).message }));
  }
}
