// A VM's shape: what two VMs must share for one to stand in for the other (a
// factory's warm VM for a sandbox's own). Sockets, the pod's devices and its
// vsock CID are given at handout or are the VM's own, and the host's TSC rate
// (read from /proc/cpuinfo, which moves with frequency scaling) is the host's;
// a warm VM's empty hotplug ports are a factory's, for the pod's NICs (TakeRequest.nics);
// everything else counts.
import type { LaunchOptions } from "./vm";

export function vmShape(qemuPath: string, spec: LaunchOptions["spec"]): string {
  const { vsockCid, tscKhz: _host, hotplugPorts: _ports, ...rest } = spec;
  return JSON.stringify({ qemu: qemuPath, ...rest, vsock: vsockCid !== undefined });
}
