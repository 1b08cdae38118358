// A pod network for the private containerd: Debian's CNI plugins
// (containernetworking-plugins), a bridge per containerd with host-local
// addresses in a /24 of its own and the bridge as the pods' gateway, no NAT and
// no iptables. Engineers share the machine, so names and subnets come from the
// caller; the bridge outlives CNI DEL and is removed by removeCniBridge.
import fs from "node:fs";
import { execFileSync } from "node:child_process";
import { which } from "../../util/which";

export const CNI_PLUGIN_DIR = "/usr/lib/cni";

export interface CniNetwork {
  /** The host bridge, at most 15 characters. */
  bridge: string;
  /** An IPv4 /24 (or larger) nobody else on the machine uses. */
  subnet: string;
  /**
   * Also chain the portmap plugin, so that a pod's hostPort answers on the
   * host (critest's port-mapping spec). It writes iptables NAT rules, and
   * removes them on CNI DEL.
   */
  portMap?: boolean;
}

/** A bridge name and a 10.x.y.0/24 from a number (a pid): two containerds on one machine get different ones. */
export function cniNetworkFor(n: number): CniNetwork {
  const k = n % 12800;
  return { bridge: `slbr${k}`, subnet: `10.${200 + Math.floor(k / 256)}.${k % 256}.0/24` };
}

export function cniConflist(n: CniNetwork, ipamDir: string): object {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(n.bridge)) throw new Error(`CNI bridge name ${JSON.stringify(n.bridge)}: want 1-15 of [A-Za-z0-9_.-]`);
  if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(n.subnet)) throw new Error(`CNI subnet ${JSON.stringify(n.subnet)}: want an IPv4 CIDR`);
  return {
    cniVersion: "0.4.0",
    name: `shimlab-${n.bridge}`,
    plugins: [
      {
        type: "bridge",
        bridge: n.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: "host-local", ranges: [[{ subnet: n.subnet }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: ipamDir },
      },
      ...(n.portMap ? [{ type: "portmap", capabilities: { portMappings: true } }] : []),
    ],
  };
}

/** What the pod network needs on this machine, or null when it is all there. */
export function cniMissing(o: { portMap?: boolean } = {}): string | null {
  for (const p of ["bridge", "host-local", "loopback", ...(o.portMap ? ["portmap"] : [])]) if (!fs.existsSync(`${CNI_PLUGIN_DIR}/${p}`)) return `CNI plugin ${CNI_PLUGIN_DIR}/${p} (apt-get install containernetworking-plugins)`;
  for (const t of ["ip", "tc", "nsenter"]) if (!which(t)) return `${t} (apt-get install iproute2 util-linux)`;
  if (o.portMap && !which("iptables")) return "iptables, for the CNI portmap plugin (apt-get install iptables)";
  return null;
}

/** CNI DEL leaves the bridge; the containerd that made it is gone, so it goes too. */
export function removeCniBridge(n: CniNetwork): void {
  try {
    execFileSync("ip", ["link", "del", n.bridge], { stdio: "ignore" });
  } catch {
    /* never made, or already gone */
  }
}
