// hypervisor = "qemu": each sandbox is a QEMU VM whose guest runs shimlab's
// mock agent on a virtio-serial port, with container root filesystems shared
// in over 9p.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { unavailable } from "../../ttrpc/status";
import type { Hypervisor, SandboxVm, StartOptions } from "../types";
import { chooseAccel } from "./accel";
import { parseQemuConfig, type QemuConfig } from "./config";
import { cacheRoot, ensureImage } from "./image";
import { QemuVm } from "./vm";

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

  constructor(readonly config: QemuConfig) {}

  private async image(o: StartOptions): Promise<{ kernel: string; initrd: string; key: string }> {
    const c = this.config;
    if (c.kernel && c.initrd) {
      for (const f of [c.kernel, c.initrd]) if (!fs.existsSync(f)) throw unavailable(`guest image file ${f} does not exist`);
      return { kernel: c.kernel, initrd: c.initrd, key: path.basename(c.initrd) };
    }
    try {
      const img = await ensureImage({
        cacheDir: c.cacheDir ?? cacheRoot(o.env),
        runc: c.guestRuntime === "runc",
        onProgress: (m) => o.logger.info(`guest image: ${m}`),
      });
      return { kernel: img.kernel, initrd: img.initrd, key: img.key };
    } catch (e) {
      throw unavailable(`no guest image: ${(e as Error).message}`);
    }
  }

  async start(o: StartOptions): Promise<SandboxVm> {
    const c = this.config;
    const img = await this.image(o);
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
      kernelParams,
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
    return QemuVm.launch({
      qemuPath: c.path,
      spec: spec(accel.accel),
      runDir: o.runDir,
      logger: o.logger,
      bootTimeoutMs: c.bootTimeoutMs,
      env: o.env,
      share: true,
    });
  }
}

/** A guest CID from the sandbox id: 3 and up, below the reserved 2^32-1. */
export function vsockCid(sandboxId: string): number {
  let h = 2166136261;
  for (const ch of Buffer.from(sandboxId)) h = Math.imul(h ^ ch, 16777619) >>> 0;
  return 3 + (h % 0xfffffff0);
}
