// A warm VM's rehearsal: before its agent serves, it runs one throwaway
// container through its runtime and reads the network with `ip`, the work a
// pod will ask for. Under TCG the first run of any code is translated first,
// and translation, not execution, is most of a short-lived process's time; the
// translated blocks stay in QEMU's cache, and with the guest's mappings fixed
// (norandmaps) the pod's crun and ip find them there. Only a factory's VMs
// rehearse: they wait in a pool anyway, while a cold VM has a pod waiting.
import fs from "node:fs";
import path from "node:path";
import type { OciSpec } from "../oci/spec";
import { DEFAULT_MOUNTS } from "../oci/default-mounts";
import type { Logger } from "../util/logger";
import type { Runtime } from "./runtime/types";

export const REHEARSAL_ID = "shimlab-rehearsal";
/** Past this the VM serves unrehearsed: a few seconds under TCG at most, normally. */
export const REHEARSAL_MS = 60_000;

/** What a CRI pause container asks of the runtime, with a busybox of the guest's own as its program. */
export function rehearsalSpec(rootfs: string): OciSpec {
  const caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"];
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 65535, gid: 65535 },
      args: ["/bin/busybox", "true"],
      env: ["PATH=/bin"],
      cwd: "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: true },
    hostname: REHEARSAL_ID,
    mounts: DEFAULT_MOUNTS.map((m) => ({ ...m, options: [...(m.options ?? [])] })),
    linux: {
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      // containerd's defaults: crun masks each path, and turns the device rule into a BPF program (cgroup v2)
      maskedPaths: ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
      resources: { devices: [{ allow: false, access: "rwm" }], cpu: { shares: 2 } },
    },
  };
}

export interface RehearsalNetwork {
  listInterfaces(): Promise<unknown>;
  listRoutes(): Promise<unknown>;
}

/** Runs the rehearsal; never throws (a VM that could not rehearse is still a VM), says how long each part took. */
export async function rehearse(o: { runtime: Runtime; network: RehearsalNetwork | null; stateDir: string; busybox?: string; logger: Logger; timeoutMs?: number }): Promise<void> {
  const timeoutMs = o.timeoutMs ?? REHEARSAL_MS;
  const dir = path.join(o.stateDir, REHEARSAL_ID);
  const rootfs = path.join(dir, "rootfs");
  const t0 = Date.now();
  // Nothing serves yet: without a handle of its own the process would end while a child's exit is awaited.
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not done in ${timeoutMs} ms`)), timeoutMs)));
  try {
    await Promise.race([run(), deadline]);
  } catch (e) {
    o.logger.warn("rehearsal failed", { error: (e as Error).message });
  } finally {
    // also when create was still running at the deadline: the runtime's delete tolerates a container it never made
    await o.runtime.destroy(REHEARSAL_ID).catch((e: Error) => o.logger.warn("rehearsal container not removed", { error: e.message }));
    o.runtime.removeCgroup(`/${REHEARSAL_ID}`);
    fs.rmSync(dir, { recursive: true, force: true });
    clearTimeout(timer);
  }

  async function run(): Promise<void> {
    fs.mkdirSync(path.join(rootfs, "bin"), { recursive: true });
    const bb = o.busybox ?? "/bin/busybox";
    try {
      fs.linkSync(bb, path.join(rootfs, "bin", "busybox"));
    } catch {
      fs.copyFileSync(bb, path.join(rootfs, "bin", "busybox"));
      fs.chmodSync(path.join(rootfs, "bin", "busybox"), 0o755);
    }
    const p = await o.runtime.create({ id: REHEARSAL_ID, dir: path.join(dir, "bundle"), spec: rehearsalSpec(rootfs), cgroupsPath: `/${REHEARSAL_ID}` });
    p?.stdout?.resume();
    p?.stderr?.resume();
    await o.runtime.start(REHEARSAL_ID);
    const code = p ? await p.exit : 0;
    const containerMs = Date.now() - t0;
    await o.network?.listInterfaces();
    await o.network?.listRoutes();
    o.logger.info("rehearsed", { exitCode: code, containerMs, networkMs: Date.now() - t0 - containerMs });
  }
}
