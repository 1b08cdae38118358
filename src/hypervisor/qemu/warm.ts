// A `shimlab factory` of QEMU VMs (Kata's VMCache): VMs booted ahead with the
// configuration's settings and no sandbox's annotations, their agent serving,
// each under a keeper (native/vm-keeper.c) that ends it with its holder: the
// factory while it is pooled, the shim that took it from then on. Handed out
// with its sockets and its shared directory; the shim gives it its sandbox
// (CreateSandbox: hostname, storages) as it would a VM it booted.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { ChildProcess } from "node:child_process";
import type { Logger } from "../../util/logger";
import type { Warmer, WarmBoot } from "../factory/warmer";
import type { QemuConfig } from "./config";
import type { LaunchOptions } from "./vm";
import { QemuVm } from "./vm";
import { vmShape } from "./shape";
import { shimlabDist } from "./image-manifest";
import { processStartTime } from "../rundir";
import type { WarmAgent } from "../factory/protocol";
import type { QemuHypervisor } from "./index";
import { UNCLAIMED_MS } from "../../util/unclaimed";
import { VirtioSerialTransport } from "../../agent/transport";
import { checkAgent } from "../factory/check";
import { rehearseCalls } from "../factory/rehearse-calls";
import { REHEARSE_PARAM } from "./guest-init";

/** A booted guest's agent answers Check within this, TCG included (Kata allows 30 s). */
const AGENT_CHECK_MS = 30_000;

/**
 * How long after a take a TCG pool starts booting the next VM. The VM just handed out spends its
 * first ~0.6-0.7 s starting its pod, nearly all of it guest CPU, and a boot beside it takes its
 * cgroup's share of the CPU (lowCpuCgroup's weight, ~10 % against one busy vCPU) from that pod:
 * 4 alternating 5-run passes of bench/qemu-pod.mjs, pinned, gave 626-656 ms a warm pod against
 * 725-782 with the factory's 150 ms (bench/CHANGELOG.md). A TCG boot takes seconds, so the pool is
 * full again a second later than it would have been, no more. Under KVM the pod is done sooner and
 * the factory's own delay stays.
 */
export const TCG_REFILL_DELAY_MS = 1000;

/** Empty PCIe root ports a warm q35 VM boots with: NICs for the pod it is handed to (Kata's pods have one, CNI's usual). */
export const WARM_NIC_PORTS = 2;

/** native/build/vm-keeper beside the dist/ this runs from (a checkout, or `shimlab install --copy`'s). */
export function keeperPath(): string {
  return process.env.SHIMLAB_VM_KEEPER ?? path.join(path.dirname(shimlabDist()), "native", "build", "vm-keeper");
}

/** A pooled VM's spec beside a sandbox's: its own vsock CID, hot-plug ports, and under TCG a rehearsal (mock-agent/rehearse.ts), since it waits in the pool anyway. */
export function warmSpec(spec: LaunchOptions["spec"]): LaunchOptions["spec"] {
  return {
    ...spec,
    // A CID of its own where vhost-vsock exists: the sandbox's would be derived from an id not known yet.
    vsockCid: spec.vsockCid === undefined ? undefined : 3 + crypto.randomInt(0xfffffff0 - 3),
    hotplugPorts: portsFor(spec),
    kernelParams: spec.accel === "tcg" ? [...(spec.kernelParams ?? []), REHEARSE_PARAM] : spec.kernelParams,
  };
}

export function qemuWarmer(hv: QemuHypervisor, o: { logger: Logger; env?: NodeJS.ProcessEnv }): Warmer {
  let prepared: { c: QemuConfig; spec: LaunchOptions["spec"]; shape: string } | null = null;
  const need = () => {
    if (!prepared) throw new Error("the QEMU warmer was not initialised");
    return prepared;
  };
  return {
    kind: "qemu",
    /** The image and accelerator, once: a factory with no image to boot fails as it starts. */
    async init() {
      const keeper = keeperPath();
      if (!fs.existsSync(keeper)) throw new Error(`${keeper} is missing: run npm run build`);
      const { c, spec } = await hv.vmSpec({ sandboxId: "factory", env: o.env, logger: o.logger });
      prepared = { c, spec, shape: vmShape(c.path, spec) };
    },
    describe: () => ({ kind: "qemu", agentRuntime: need().c.guestRuntime, cgroupParent: "", shape: need().shape }),
    refillDelayMs: () => (need().spec.accel === "tcg" ? TCG_REFILL_DELAY_MS : undefined),
    refuse(req) {
      if (req.kind !== "qemu") return `this factory keeps QEMU VMs, not ${req.kind === "none" ? "host agents" : req.kind}`;
      if (req.shape !== need().shape) return `this factory's VMs are ${need().shape}, not ${req.shape ?? "unspecified"}`;
      const ports = portsFor(need().spec);
      if ((req.nics ?? 0) > ports) return `this factory's VMs take ${ports} NICs at most, not ${req.nics}`;
      return null;
    },
    async boot(dir): Promise<WarmBoot> {
      const { c, spec } = need();
      let resolveSpawn!: (s: { child: ChildProcess; qemuPid: number }) => void;
      // once QEMU runs under its keeper: the factory moves both to the background at once
      const spawned = new Promise<{ child: ChildProcess; qemuPid: number }>((r) => (resolveSpawn = r));
      // made once, when it is ready: the factory asks for it at every status and handout
      let out: WarmAgent | null = null;
      const launched = QemuVm.launch({
        qemuPath: c.path,
        spec: warmSpec(spec),
        runDir: dir,
        logger: o.logger,
        bootTimeoutMs: c.bootTimeoutMs,
        env: o.env,
        share: true,
        keeper: keeperPath(),
        unclaimedMs: UNCLAIMED_MS,
        onSpawn: (child, qemuPid) => resolveSpawn({ child, qemuPid }),
      });
      const { child, qemuPid } = await Promise.race([spawned, launched.then(() => spawned)]);
      const keeperStartTime = processStartTime(child.pid!) ?? "";
      const ready = launched.then(
        async (v) => {
          // The taker connects its own: QEMU serves one client on each.
          v.release();
          const h = v.warmHandle();
          // the guest agent's first connection and call, under TCG too, before a pod waits for them (factory/check.ts);
          // under TCG also the calls of a pod's path, refused, for the agent to have decoded them once (factory/rehearse-calls.ts)
          const rehearse = spec.accel === "tcg" ? rehearseCalls : undefined;
          if (!(await checkAgent(new VirtioSerialTransport(h.agentSocket), AGENT_CHECK_MS, { rehearse, logger: o.logger }))) {
            o.logger.error("a warm VM's agent is not pooled: it did not answer Check, or its rehearsal", { pid: v.pid });
            return false;
          }
          out = { pid: child.pid!, startTime: keeperStartTime, socket: h.agentSocket, runcRoot: "", dir, vm: { ...h, pid: v.pid, dir, hotplugPorts: portsFor(spec) } };
          return true;
        },
        (e: Error) => {
          o.logger.error("a warm VM did not boot", { error: e.message });
          return false;
        },
      );
      return {
        child,
        ready,
        pids: () => [child.pid!, qemuPid],
        // QEMU's stderr came to the factory while it was pooled: its new holder has no use for the
        // factory's end, and the factory keeps nothing of a VM it no longer holds (QEMU ignores EPIPE).
        release: () => child.stderr?.destroy(),
        handout: () => {
          if (!out) throw new Error("the warm VM is not booted yet");
          return out;
        },
      };
    },
    stale(bootedAt) {
      const { spec } = need();
      for (const f of [spec.kernel, spec.initrd]) {
        const st = fs.statSync(f, { throwIfNoEntry: false });
        if (!st) return `stale (${f} is gone)`;
        if (st.mtimeMs > bootedAt) return `stale (${f} was rebuilt since it booted)`;
      }
      return null;
    },
  };
}

function portsFor(spec: LaunchOptions["spec"]): number {
  return spec.machine === "q35" ? WARM_NIC_PORTS : 0;
}
