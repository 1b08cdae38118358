// KVM only where it is proven to work. On these machines /dev/kvm is served
// by kvm_pvm, which boots only PVM-enabled guest kernels: a stock Debian
// kernel hangs or dies with "KVM internal error". Openable /dev/kvm proves
// nothing, so a host that looks capable still gets a probe boot, and its
// verdict is remembered per host kernel and guest image.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface KvmFacts {
  devKvm: boolean;
  pvm: boolean;
  hwVirt: boolean;
}

export function kvmFacts(): KvmFacts {
  let devKvm = false;
  try {
    fs.accessSync("/dev/kvm", fs.constants.R_OK | fs.constants.W_OK);
    devKvm = true;
  } catch {
    /* absent or not ours */
  }
  let hwVirt = false;
  try {
    hwVirt = /^flags\s*:.*\b(vmx|svm)\b/m.test(fs.readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    /* no cpuinfo: assume not */
  }
  return { devKvm, pvm: fs.existsSync("/sys/module/kvm_pvm"), hwVirt };
}

/** Why KVM cannot be used without even trying, or null when a probe boot should decide. */
export function kvmRuledOut(f: KvmFacts): string | null {
  if (!f.devKvm) return "/dev/kvm is not usable";
  if (f.pvm) return "/dev/kvm is PVM (kvm_pvm), which does not boot a stock kernel";
  if (!f.hwVirt) return "the CPU has no vmx/svm";
  return null;
}

/**
 * Decides between KVM and TCG. probe boots the guest under KVM and says
 * whether it reached its agent; it runs at most once per host kernel and image.
 */
export async function chooseAccel(
  want: "auto" | "kvm" | "tcg",
  opts: { cacheDir: string; imageKey: string; facts?: KvmFacts; probe: () => Promise<boolean> },
): Promise<{ accel: "kvm" | "tcg"; why: string }> {
  if (want === "tcg") return { accel: "tcg", why: "configured" };
  if (want === "kvm") return { accel: "kvm", why: "configured" };
  const out = kvmRuledOut(opts.facts ?? kvmFacts());
  if (out) return { accel: "tcg", why: out };
  const f = path.join(opts.cacheDir, `kvm-probe-${os.release()}-${opts.imageKey}.json`);
  try {
    const r = JSON.parse(fs.readFileSync(f, "utf8")) as { kvm: boolean };
    return r.kvm ? { accel: "kvm", why: "an earlier probe boot worked" } : { accel: "tcg", why: "an earlier KVM probe boot failed" };
  } catch {
    /* not probed yet */
  }
  const ok = await opts.probe().catch(() => false);
  try {
    fs.mkdirSync(opts.cacheDir, { recursive: true });
    fs.writeFileSync(f, JSON.stringify({ kvm: ok, at: new Date().toISOString() }));
  } catch {
    /* unremembered: probe again next time */
  }
  return ok ? { accel: "kvm", why: "probe boot worked" } : { accel: "tcg", why: "KVM probe boot failed" };
}
