// The QEMU command line, Kata's shape: no defaults, the kernel and initramfs
// booted directly, the agent on a virtio-serial port named agent.channel.0
// behind a unix chardev, QMP and the guest console on unix sockets, and a 9p
// share tagged kataShared for container root filesystems.
import { AGENT_PORT_NAME, USR_SHARE_TAG } from "./guest-init";
import { SHARE_TAG } from "../../util/guest-share";

export type Machine = "q35" | "microvm";
export type Accel = "kvm" | "tcg";

export interface QemuSpec {
  machine: Machine;
  accel: Accel;
  memoryMb: number;
  vcpus: number;
  kernel: string;
  initrd: string;
  /** Extra kernel command line words. */
  kernelParams?: string[];
  agentSocket: string;
  qmpSocket: string;
  consoleSocket: string;
  /** Host directory shared as 9p tag kataShared. */
  sharedDir?: string;
  /** The image's /usr, shared read-only as 9p tag shimlabUsr. */
  usrDir?: string;
  /** virtio-net NICs on taps (the pod's network, network.ts); QEMU must run in the taps' namespace. */
  nics?: { tap: string; mac: string }[];
  /**
   * Empty PCIe root ports (q35 only) for NICs plugged in later over QMP: a factory's warm VM gets
   * its pod's network when it is handed out (vm.ts plugNetwork).
   */
  hotplugPorts?: number;
  /** vhost-vsock guest CID; only where /dev/vhost-vsock exists. */
  vsockCid?: number;
  pidFile?: string;
  /** The host TSC in kHz: microvm has no PIT/HPET to calibrate against and hangs without it. */
  tscKhz?: number;
}

export { SHARE_TAG } from "../../util/guest-share";
/** The ids of the root ports hotplugPorts adds: hp0, hp1... */
export const HOTPLUG_PORT_PREFIX = "hp";

/** Characters QEMU's option parser treats specially: a path with them would be split or misread. */
function optPath(what: string, p: string): string {
  if (!p.startsWith("/")) throw new Error(`${what} must be an absolute path: ${JSON.stringify(p)}`);
  if (/[,\n\0]/.test(p)) throw new Error(`${what} ${JSON.stringify(p)} contains a comma or control character, which QEMU options cannot carry`);
  return p;
}

/**
 * Under TCG every instruction of the guest kernel's boot is translated, so work it can skip is boot
 * time saved (bench/qemu-boot.mjs, README "Boot time"): Debian's kernel zeroes every page it hands
 * out (init_on_alloc, a hardening Kata's guest kernel does not build in), which for a 110 MB
 * initramfs and node's heap is most of the gain; crypto self-tests, the PS/2 controller probe, the
 * clocksource watchdog and audit are the rest. Spectre mitigations stay on.
 */
export const BOOT_SPEED_PARAMS = [
  "init_on_alloc=0",
  "loglevel=0",
  "cryptomgr.notests",
  "i8042.noaux",
  "i8042.nokbd",
  "i8042.nopnp",
  "tsc=reliable",
  "no_timer_check",
  "rcupdate.rcu_expedited=1",
  "random.trust_cpu=on",
  "audit=0",
  "nowatchdog",
];

export function kernelCommandLine(s: Pick<QemuSpec, "machine" | "kernelParams" | "tscKhz">): string {
  const words = ["console=ttyS0", "panic=-1", "quiet", "reboot=t", ...BOOT_SPEED_PARAMS];
  if (s.machine === "microvm" && s.tscKhz) words.push(`tsc_early_khz=${Math.round(s.tscKhz)}`);
  for (const w of s.kernelParams ?? []) {
    if (!/^[\x21-\x7e]+$/.test(w)) throw new Error(`kernel parameter ${JSON.stringify(w)} must be one printable word`);
    words.push(w);
  }
  return words.join(" ");
}

export function qemuArgs(s: QemuSpec): string[] {
  if (s.machine !== "q35" && s.machine !== "microvm") throw new Error(`machine ${JSON.stringify(s.machine)}: want q35 or microvm`);
  if (s.accel !== "kvm" && s.accel !== "tcg") throw new Error(`accelerator ${JSON.stringify(s.accel)}: want kvm or tcg`);
  if (!Number.isInteger(s.memoryMb) || s.memoryMb < 128) throw new Error(`memory ${s.memoryMb} MiB: want an integer of at least 128`);
  if (!Number.isInteger(s.vcpus) || s.vcpus < 1 || s.vcpus > 64) throw new Error(`vcpus ${s.vcpus}: want 1..64`);
  // microvm has no PCI: its virtio devices sit on MMIO.
  const dev = (name: string) => (s.machine === "microvm" ? `${name}-device` : `${name}-pci`);
  const a = [
    "-name", "shimlab",
    "-nodefaults",
    "-no-user-config",
    "-display", "none",
    "-no-reboot",
    "-machine", s.machine === "q35" ? "q35" : "microvm",
    "-accel", s.accel,
    // Under TCG "max" boots the node agent about 1 s sooner than the default qemu64 model (9 boots
    // each, medians 4.98 s vs 5.95 s): glibc and V8 pick instructions TCG translates into less code.
    "-cpu", s.accel === "kvm" ? "host" : "max",
    "-m", String(s.memoryMb),
    "-smp", String(s.vcpus),
    "-kernel", optPath("kernel", s.kernel),
    "-initrd", optPath("initrd", s.initrd),
    "-append", kernelCommandLine(s),
    "-qmp", `unix:${optPath("QMP socket", s.qmpSocket)},server=on,wait=off`,
    "-chardev", `socket,id=console,path=${optPath("console socket", s.consoleSocket)},server=on,wait=off`,
    "-serial", "chardev:console",
    "-device", `${dev("virtio-serial")},id=serial0`,
    "-chardev", `socket,id=charch0,path=${optPath("agent socket", s.agentSocket)},server=on,wait=off`,
    "-device", `virtserialport,bus=serial0.0,chardev=charch0,id=channel0,name=${AGENT_PORT_NAME}`,
  ];
  if (s.sharedDir) {
    a.push("-fsdev", `local,id=extra-9p-${SHARE_TAG},path=${optPath("shared directory", s.sharedDir)},security_model=none,multidevs=remap`);
    a.push("-device", `${dev("virtio-9p")},fsdev=extra-9p-${SHARE_TAG},mount_tag=${SHARE_TAG}`);
  }
  if (s.usrDir) {
    a.push("-fsdev", `local,id=usr,path=${optPath("image /usr directory", s.usrDir)},security_model=none,readonly=on`);
    a.push("-device", `${dev("virtio-9p")},fsdev=usr,mount_tag=${USR_SHARE_TAG}`);
  }
  for (const [i, n] of (s.nics ?? []).entries()) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(n.tap)) throw new Error(`tap name ${JSON.stringify(n.tap)}: want 1-15 of [A-Za-z0-9_.-]`);
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(n.mac)) throw new Error(`MAC address ${JSON.stringify(n.mac)}: want six hex octets`);
    a.push("-netdev", `tap,id=network-${i},ifname=${n.tap},script=no,downscript=no`);
    // romfile= : no iPXE option ROM (the kernel boots directly; Debian's qemu does not require ipxe-qemu).
    a.push("-device", `${dev("virtio-net")},netdev=network-${i},mac=${n.mac}${s.machine === "microvm" ? "" : ",romfile="}`);
  }
  const ports = s.hotplugPorts ?? 0;
  if (!Number.isInteger(ports) || ports < 0 || ports > 8) throw new Error(`hotplug ports ${ports}: want 0..8`);
  if (ports && s.machine !== "q35") throw new Error("hotplug ports need machine q35 (microvm has no PCI)");
  for (let i = 0; i < ports; i++) a.push("-device", `pcie-root-port,id=${HOTPLUG_PORT_PREFIX}${i},bus=pcie.0,chassis=${i + 1}`);
  if (s.vsockCid !== undefined) {
    if (!Number.isInteger(s.vsockCid) || s.vsockCid < 3 || s.vsockCid > 0xfffffffe) throw new Error(`vsock guest CID ${s.vsockCid}: want 3..4294967294`);
    a.push("-device", `${dev("vhost-vsock")},id=vsock-${s.vsockCid},guest-cid=${s.vsockCid}`);
  }
  if (s.pidFile) a.push("-pidfile", optPath("pid file", s.pidFile));
  return a;
}
