// hypervisor = "qemu": each sandbox is a QEMU VM whose guest runs shimlab's
// mock agent on a virtio-serial port, with container root filesystems shared
// in over 9p.
import fs from "node:fs";
import { admitInVm } from "./admit";
import type { OciSpec } from "../../oci/spec";
import os from "node:os";
import path from "node:path";
import { invalidArgument, unavailable } from "../../errdefs";
import { hypervisorOverrides } from "../annotations";
import type { Hypervisor, SandboxVm, StartOptions } from "../types";
import { chooseAccel } from "./accel";
import { parseQemuConfig, type QemuConfig } from "./config";
import { cacheRoot, findImage } from "./image-manifest";
import { QemuVm, type LaunchOptions } from "./vm";
import { vmShape } from "./shape";
import { takeWarmAgent } from "../factory/client";
import { joinCgroupsOfLater } from "../../util/cgroup";
import { SNAPSHOT_PARAM, TCG_FIXED_LAYOUT_PARAM } from "./guest-init";
import { attachPodNetwork, detachPodNetwork, scanPodNetwork, type PodNetworkPlan } from "./network";
import { ruleComment } from "./loopback-commands";

export { parseQemuConfig, type QemuConfig } from "./config";
export { QemuVm } from "./vm";

function hostTscKhz(): number | undefined {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"));
    return m ? Math.round(Number(m[1]) * 1000) : undefined;
  } catch {
    return undefined;
  }
}

export class QemuHypervisor implements Hypervisor {
  readonly kind = "qemu" as const;

  static configFrom(raw: Record<string, unknown>, source: string): QemuConfig {
    return parseQemuConfig(raw, source);
  }

  /** factorySocket: a `shimlab factory` of QEMU VMs, to take a warm VM from when a sandbox fits its pool. */
  constructor(
    readonly config: QemuConfig,
    private readonly factorySocket?: string,
  ) {}

  /**
   * The kernel, initramfs and /usr a sandbox boots: the configured files, or the image
   * `shimlab image build` made for this shimlab. A start never builds one (seconds to minutes,
   * and a VM of its own): a missing or stale image fails it with the command to run.
   */
  private image(o: Pick<StartOptions, "env" | "logger">, c: QemuConfig): { kernel: string; initrd: string; usrDir?: string; key: string } {
    if (c.kernel || c.initrd) {
      for (const f of [c.kernel, c.initrd]) if (f && !fs.existsSync(f)) throw unavailable(`guest image file ${f} does not exist`);
    }
    if (c.kernel && c.initrd) return { kernel: c.kernel, initrd: c.initrd, key: path.basename(c.initrd) };
    const cacheDir = c.cacheDir ?? cacheRoot(o.env);
    const found = findImage({
      cacheDir,
      kernels: c.guestKernel === "auto" ? ["shimlab", "debian"] : [c.guestKernel],
      layout: c.guestUsr,
      runc: c.guestRuntime !== "host",
      crun: c.guestRuntime === "crun",
    });
    if ("error" in found) throw unavailable(found.error);
    const img = found.manifest;
    o.logger.info("guest image chosen", { key: img.key, kernel: img.kernel.path, version: img.kernelVersion, setting: c.guestKernel, built: img.builtAt });
    // An annotation may replace one of the two (from its valid_*_paths).
    return { kernel: c.kernel ?? img.kernel.path, initrd: c.initrd ?? img.initrd.path, usrDir: img.usr?.path, key: img.key };
  }

  admit(spec: OciSpec): void {
    admitInVm(spec);
  }

  /** A VM boots only in start(), which hands it out: the driver holds nothing of its own. */
  async release(): Promise<void> {}

  /**
   * What a VM for these settings boots with, but its sockets and the pod's own devices: the
   * sandbox's (annotations and all), or a factory's warm VMs' (no annotations).
   */
  async vmSpec(o: Pick<StartOptions, "annotations" | "env" | "logger"> & { sandboxId: string }): Promise<{ c: QemuConfig; spec: LaunchOptions["spec"] }> {
    const c = sandboxSettings(this.config, o.annotations);
    const img = this.image(o, c);
    const cacheDir = c.cacheDir ?? cacheRoot(o.env);
    const kernelParams = [`shimlab.runtime=${c.guestRuntime}`, ...c.kernelParams];
    if (c.jitless) kernelParams.push("shimlab.jitless");
    if (c.debug) kernelParams.push("shimlab.debug");
    const spec = (accel: "kvm" | "tcg") => ({
      machine: c.machine,
      accel,
      memoryMb: c.memoryMb,
      vcpus: c.vcpus,
      kernel: img.kernel,
      initrd: img.initrd,
      usrDir: img.usrDir,
      // The agent's startup snapshot was made under TCG's CPU; V8 refuses it on another. Under TCG
      // the guest's mappings are fixed (norandmaps): a program run again lands at the addresses of its
      // last run, where QEMU's translated blocks for it still are (bench/README.md, "Warm QEMU VMs").
      kernelParams: accel === "tcg" ? [...kernelParams, SNAPSHOT_PARAM, TCG_FIXED_LAYOUT_PARAM] : kernelParams,
      tscKhz: hostTscKhz(),
      vsockCid: c.vsock && fs.existsSync("/dev/vhost-vsock") ? vsockCid(o.sandboxId) : undefined,
    });
    const accel = await chooseAccel(c.accel, {
      cacheDir,
      imageKey: img.key,
      probe: async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-kvm-probe-"));
        try {
          const vm = await QemuVm.launch({ qemuPath: c.path, spec: spec("kvm"), runDir: dir, logger: o.logger, bootTimeoutMs: 20_000, env: o.env });
          await vm.stop();
          return true;
        } catch (e) {
          o.logger.info("KVM probe boot failed; using TCG", { error: (e as Error).message });
          return false;
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      },
    });
    o.logger.info("accelerator chosen", { accel: accel.accel, why: accel.why });
    return { c, spec: spec(accel.accel) };
  }

  async start(o: StartOptions): Promise<SandboxVm> {
    const { c, spec } = await this.vmSpec(o);
    const network = o.netns ? await podNetwork(o.netns, o) : undefined;
    const launch: LaunchOptions = {
      qemuPath: c.path,
      spec,
      runDir: o.runDir,
      logger: o.logger,
      bootTimeoutMs: c.bootTimeoutMs,
      env: o.env,
      share: true,
      network,
      loopback: o.netns ? { netns: o.netns, comment: ruleComment(o.sandboxId) } : undefined,
    };
    if (this.factorySocket) {
      const warm = await this.takeWarm(launch, o);
      if (warm) return warm;
    }
    try {
      return await QemuVm.launch(launch);
    } catch (e) {
      if (network) await detachPodNetwork(network, o.logger);
      throw e;
    }
  }

  /**
   * A warm VM from the factory, when this sandbox's VM would be the same as the pool's (its shape:
   * QEMU, machine, memory, CPUs, kernel, image) and the pool's VMs have ports for its NICs (plugged
   * in at handout); null when not, or when the factory has none to give or is gone: a factory only
   * ever saves time.
   */
  private async takeWarm(launch: LaunchOptions, o: StartOptions): Promise<QemuVm | null> {
    const skip = (reason: string) => (o.logger.info("no warm VM from the factory: booting one", { factory: this.factorySocket, reason }), null);
    const nics = launch.network?.nics.length ?? 0;
    let w;
    try {
      w = await takeWarmAgent(this.factorySocket!, { kind: "qemu", agentRuntime: this.config.guestRuntime, shape: vmShape(launch.qemuPath, launch.spec), nics });
    } catch (e) {
      return skip((e as Error).message);
    }
    if (!w.vm) return skip("the factory's answer has no VM");
    // Ours now, as if this shim had booted it: its cgroups (a service's, containerd's, the pod's
    // accounting), not the factory's, which a restart of the factory's service may empty. Each move
    // waits for an RCU grace period, on libuv's threads, not this one.
    await joinCgroupsOfLater(w.pid);
    await joinCgroupsOfLater(w.vm.pid);
    try {
      return await QemuVm.adopt(launch, { ...w.vm, keeper: { pid: w.pid, startTime: w.startTime } });
    } catch (e) {
      return skip(`the warm VM could not be taken over: ${(e as Error).message}`);
    }
  }
}

/** The pod's interfaces, mirrored onto taps for the VM's NICs; undefined when CNI gave it none. */
async function podNetwork(netns: string, o: StartOptions): Promise<PodNetworkPlan | undefined> {
  if (!fs.existsSync(netns)) throw unavailable(`the pod's network namespace ${netns} does not exist`);
  let plan: PodNetworkPlan;
  try {
    plan = await scanPodNetwork(netns);
  } catch (e) {
    throw unavailable(`reading the pod's network namespace: ${(e as Error).message}`);
  }
  if (!plan.nics.length) {
    o.logger.info("the pod's network namespace has no addressed interface: the VM gets no NIC", { netns });
    return undefined;
  }
  await attachPodNetwork(plan, o.logger);
  return plan;
}

/**
 * This sandbox's settings: the configuration, with what its annotations may
 * override through enable_annotations (InvalidArgument for anything else).
 */
export function sandboxSettings(c: QemuConfig, annotations: Record<string, string> | undefined): QemuConfig {
  const ov = hypervisorOverrides(annotations, {
    enable: c.enableAnnotations,
    validHypervisorPaths: c.validHypervisorPaths,
    validKernelPaths: c.validKernelPaths,
    validInitrdPaths: c.validInitrdPaths,
  });
  const out: QemuConfig = { ...c };
  if (ov.memoryMb !== undefined) {
    if (ov.memoryMb < 128) throw invalidArgument(`annotation default_memory=${ov.memoryMb}: a shimlab guest needs at least 128 MiB`);
    out.memoryMb = ov.memoryMb;
  }
  if (ov.vcpus !== undefined) {
    if (ov.vcpus > 64) throw invalidArgument(`annotation default_vcpus=${ov.vcpus}: at most 64`);
    out.vcpus = ov.vcpus;
  }
  if (ov.machineType) out.machine = ov.machineType;
  if (ov.path) out.path = ov.path;
  if (ov.kernel) out.kernel = ov.kernel;
  if (ov.initrd) out.initrd = ov.initrd;
  if (ov.kernelParams !== undefined) {
    const words = ov.kernelParams.split(/\s+/).filter(Boolean);
    const bad = words.find((w) => !/^[\x21-\x7e]+$/.test(w));
    if (bad !== undefined) throw invalidArgument(`annotation kernel_params: ${JSON.stringify(bad)} is not a printable word`);
    out.kernelParams = [...c.kernelParams, ...words];
  }
  return out;
}

/** A guest CID from the sandbox id: 3 and up, below the reserved 2^32-1. */
export function vsockCid(sandboxId: string): number {
  let h = 2166136261;
  for (const ch of Buffer.from(sandboxId)) h = Math.imul(h ^ ch, 16777619) >>> 0;
  return 3 + (h % 0xfffffff0);
}
