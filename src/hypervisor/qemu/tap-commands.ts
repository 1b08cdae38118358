// The commands that make and unmake a pod network's taps and mirrors
// (network.ts), kept free of imports: the driver's reaper (reap.ts) runs
// detachCommands in `delete` after a crash, which loads as little as it can.

/** One mirrored interface: the veth CNI made, and the tap QEMU's NIC sits on. */
export interface PodNic {
  hostIf: string;
  tap: string;
  mac: string;
  mtu: number;
}

/** `ip -batch` lines that make each tap (persistent, so it exists before QEMU opens it) and bring it up. */
export function tapLines(nics: PodNic[]): string[] {
  return nics.flatMap((n) => [`tuntap add dev ${n.tap} mode tap`, `link set dev ${n.tap} mtu ${n.mtu} up`]);
}

/** `tc -batch` lines that mirror each veth and its tap into each other. */
export function mirrorLines(nics: PodNic[]): string[] {
  const redirect = (from: string, to: string) => [
    `qdisc add dev ${from} ingress`,
    `filter add dev ${from} parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev ${to}`,
  ];
  return nics.flatMap((n) => [...redirect(n.hostIf, n.tap), ...redirect(n.tap, n.hostIf)]);
}

/**
 * What undoes an attach, one command each, run inside the namespace: the taps (their qdiscs go with
 * them) and the veths' ingress qdiscs. The shim runs them at teardown, `delete` after a crash.
 */
export function detachCommands(nics: Pick<PodNic, "hostIf" | "tap">[]): string[][] {
  return nics.flatMap((n) => [
    ["ip", "link", "del", n.tap],
    ["tc", "qdisc", "del", "dev", n.hostIf, "ingress"],
  ]);
}
