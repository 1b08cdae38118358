// The [qemu] table of shimlab's configuration, checked key by key.
//
//   [qemu]
//   path = "qemu-system-x86_64"
//   machine = "q35"            # or "microvm"
//   accel = "auto"             # auto (KVM only when a probe boot proves it) | kvm | tcg
//   memory_mb = 512            # node in the guest needs 384 or more
//   vcpus = 1
//   kernel = ""                # with initrd: a prebuilt image; else the one `shimlab image build` made (a sandbox never builds)
//   initrd = ""
//   cache_dir = ""             # default SHIMLAB_CACHE_DIR or /var/cache/shimlab
//   boot_timeout_ms = 60000    # QEMU start to the agent serving, or the VM is killed
//   guest_runtime = "runc"     # the agent's runtime in the guest: runc or crun (copied into the image) or host (no isolation)
//   guest_kernel = "auto"      # auto: the image for shimlab's VM kernel (`shimlab image build --kernel`), else Debian's |
//                              #   shimlab (fail without it) | debian
//   guest_usr = "share"        # the image's /usr (node, runc, the agent) on a read-only 9p share | "initramfs"
//   kernel_params = []
//   jitless = true             # node --jitless in the guest: under TCG every JIT-compiled page is translated again; boots ~0.35 s sooner
//   vsock = false              # add vhost-vsock-pci where /dev/vhost-vsock exists
//   enable_annotations = []    # io.katacontainers.config.hypervisor.<key> a pod may set (anchored regexps,
//                              #   src/hypervisor/annotations.ts): default_memory, default_vcpus, kernel_params,
//                              #   machine_type, path, kernel, initrd
//   valid_hypervisor_paths = [] valid_kernel_paths = [] valid_initrd_paths = []   # globs the path ones must match
import { invalidArgument } from "../../errdefs";
import type { Machine } from "./cmdline";

export interface QemuConfig {
  path: string;
  machine: Machine;
  accel: "auto" | "kvm" | "tcg";
  memoryMb: number;
  vcpus: number;
  kernel?: string;
  initrd?: string;
  cacheDir?: string;
  bootTimeoutMs: number;
  guestRuntime: "host" | "runc" | "crun";
  guestKernel: "auto" | "shimlab" | "debian";
  guestUsr: "share" | "initramfs";
  kernelParams: string[];
  jitless: boolean;
  vsock: boolean;
  debug: boolean;
  enableAnnotations: string[];
  validHypervisorPaths: string[];
  validKernelPaths: string[];
  validInitrdPaths: string[];
}

export const QEMU_DEFAULTS: QemuConfig = {
  path: "qemu-system-x86_64",
  machine: "q35",
  accel: "auto",
  memoryMb: 512,
  vcpus: 1,
  bootTimeoutMs: 60_000,
  guestRuntime: "runc",
  guestKernel: "auto",
  guestUsr: "share",
  kernelParams: [],
  jitless: true,
  vsock: false,
  debug: false,
  enableAnnotations: [],
  validHypervisorPaths: [],
  validKernelPaths: [],
  validInitrdPaths: [],
};

const KEYS = new Set(["path", "machine", "accel", "memory_mb", "vcpus", "kernel", "initrd", "cache_dir", "boot_timeout_ms", "guest_runtime", "guest_kernel", "guest_usr", "kernel_params", "jitless", "vsock", "debug", "enable_annotations", "valid_hypervisor_paths", "valid_kernel_paths", "valid_initrd_paths"]);

export function parseQemuConfig(raw: Record<string, unknown>, source: string): QemuConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalidArgument(`${source}: [qemu] must be a table`);
  const bad = (k: string, want: string) => invalidArgument(`${source}: qemu.${k} = ${JSON.stringify(raw[k])}: want ${want}`);
  for (const k of Object.keys(raw)) if (!KEYS.has(k)) throw invalidArgument(`${source}: unknown key qemu.${k}`);
  const c: QemuConfig = { ...QEMU_DEFAULTS, kernelParams: [], enableAnnotations: [], validHypervisorPaths: [], validKernelPaths: [], validInitrdPaths: [] };
  const str = (k: string) => {
    const v = raw[k];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || !v) throw bad(k, "a non-empty string");
    return v;
  };
  const int = (k: string, min: number, max: number) => {
    const v = raw[k];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw bad(k, `an integer in ${min}..${max}`);
    return v;
  };
  const bool = (k: string) => {
    const v = raw[k];
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") throw bad(k, "true or false");
    return v;
  };
  c.path = str("path") ?? c.path;
  const m = str("machine");
  if (m !== undefined) {
    if (m !== "q35" && m !== "microvm") throw bad("machine", `"q35" or "microvm"`);
    c.machine = m;
  }
  const a = str("accel");
  if (a !== undefined) {
    if (a !== "auto" && a !== "kvm" && a !== "tcg") throw bad("accel", `"auto", "kvm" or "tcg"`);
    c.accel = a;
  }
  c.memoryMb = int("memory_mb", 128, 1 << 20) ?? c.memoryMb;
  c.vcpus = int("vcpus", 1, 64) ?? c.vcpus;
  c.kernel = str("kernel");
  c.initrd = str("initrd");
  if (!!c.kernel !== !!c.initrd) throw invalidArgument(`${source}: qemu.kernel and qemu.initrd go together`);
  for (const k of ["kernel", "initrd"] as const) if (c[k] && !c[k]!.startsWith("/")) throw bad(k, "an absolute path");
  c.cacheDir = str("cache_dir");
  c.bootTimeoutMs = int("boot_timeout_ms", 100, 600_000) ?? c.bootTimeoutMs;
  const r = str("guest_runtime");
  if (r !== undefined) {
    if (r !== "host" && r !== "runc" && r !== "crun") throw bad("guest_runtime", `"host", "runc" or "crun"`);
    c.guestRuntime = r;
  }
  const gk = str("guest_kernel");
  if (gk !== undefined) {
    if (gk !== "auto" && gk !== "shimlab" && gk !== "debian") throw bad("guest_kernel", `"auto", "shimlab" or "debian"`);
    c.guestKernel = gk;
  }
  const gu = str("guest_usr");
  if (gu !== undefined) {
    if (gu !== "share" && gu !== "initramfs") throw bad("guest_usr", `"share" or "initramfs"`);
    c.guestUsr = gu;
  }
  const kp = raw.kernel_params;
  if (kp !== undefined) {
    if (!Array.isArray(kp) || kp.some((w) => typeof w !== "string" || !/^[\x21-\x7e]+$/.test(w))) throw bad("kernel_params", "a list of single printable words");
    c.kernelParams = kp as string[];
  }
  const strings = (k: string) => {
    const v = raw[k];
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || !x)) throw bad(k, "a list of non-empty strings");
    return v as string[];
  };
  c.enableAnnotations = strings("enable_annotations");
  for (const r of c.enableAnnotations) {
    try {
      new RegExp(`^(?:${r})$`);
    } catch (e) {
      throw invalidArgument(`${source}: qemu.enable_annotations entry ${JSON.stringify(r)} is not a regular expression: ${(e as Error).message}`);
    }
  }
  c.validHypervisorPaths = strings("valid_hypervisor_paths");
  c.validKernelPaths = strings("valid_kernel_paths");
  c.validInitrdPaths = strings("valid_initrd_paths");
  c.jitless = bool("jitless") ?? c.jitless;
  c.vsock = bool("vsock") ?? c.vsock;
  c.debug = bool("debug") ?? c.debug;
  return c;
}
