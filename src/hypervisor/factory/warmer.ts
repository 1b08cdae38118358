// What a factory's pool holds, by driver: the factory keeps the pool (sizes,
// refills, handouts, the lifeline's ADOPT) and a warmer boots one sandbox's
// worth ahead of time and says whom it fits. The host agent's is here; QEMU's
// is qemu/warm.ts.
import fs from "node:fs";
import type { ChildProcess } from "node:child_process";
import type { HypervisorKind } from "../types";
import type { FactoryStatus, TakeRequest, WarmAgent } from "./protocol";
import { AGENT_PORT, agentReady, mockAgentEntry, READY_TIMEOUT_MS, spawnHostAgent } from "../host-agent";
import { processStartTime } from "../rundir";
import { HybridVsockTransport } from "../../agent/transport";
import { checkAgent } from "./check";

/** One warm sandbox booting: the process the factory holds, whose fd 3 is its lifeline (ADOPT/ADOPTED). */
export interface WarmBoot {
  child: ChildProcess;
  /** true once it can be handed out, false when it failed to get there. */
  ready: Promise<boolean>;
  /** Every process to renice with it (a VM's QEMU beside its keeper). */
  pids(): number[];
  /** What a taker gets, once ready. */
  handout(): WarmAgent;
  /** Lets go of what the factory still holds of one handed out (a VM's stderr pipe). */
  release?(): void;
}

export interface Warmer {
  readonly kind: HypervisorKind;
  /** Anything to find or check once, before the factory serves (a VM's image). */
  init?(): Promise<void>;
  /** What the status reports of this pool's sandboxes. */
  describe(): Pick<FactoryStatus, "kind" | "agentRuntime" | "cgroupParent"> & { shape?: string };
  /** Why a taker's sandbox is not this pool's to serve, or null. */
  refuse(req: TakeRequest): string | null;
  /** Boots one into dir; resolves once its process is spawned. */
  boot(dir: string): Promise<WarmBoot>;
  /** Why a sandbox booted at bootedAt must not be handed out any more (built from files changed since), or null. */
  stale(bootedAt: number): string | null;
  /**
   * How long after a take the pool starts refilling, when not the factory's REFILL_DELAY_MS: what
   * one of these sandboxes takes to start the pod it was handed, if a boot beside it would slow it.
   */
  refillDelayMs?(): number | undefined;
}

export function hostAgentWarmer(o: { agentRuntime: "auto" | "runc" | "host"; debug?: boolean; env: NodeJS.ProcessEnv; cgroupParent: string }): Warmer {
  return {
    kind: "none",
    describe: () => ({ kind: "none", agentRuntime: o.agentRuntime, cgroupParent: o.cgroupParent }),
    refuse(req) {
      if (req.kind !== "none") return `this factory keeps host agents, not ${req.kind}`;
      if (req.agentRuntime !== o.agentRuntime) return `this factory's agents run containers with ${o.agentRuntime}, not ${req.agentRuntime}`;
      // An agent computes its containers' cgroups from its own environment.
      if (req.cgroupParent !== o.cgroupParent) return `this factory's agents put containers under ${o.cgroupParent}, not ${req.cgroupParent}`;
      return null;
    },
    async boot(dir) {
      const a = spawnHostAgent({ dir, agentRuntime: o.agentRuntime, debug: o.debug, env: o.env, detached: true });
      const pid = a.child.pid!;
      const startTime = processStartTime(pid) ?? "";
      return {
        child: a.child,
        ready: agentReady(a.child, READY_TIMEOUT_MS).then((ok) => ok && checkAgent(new HybridVsockTransport(a.socket, AGENT_PORT), 5_000)),
        pids: () => [pid],
        handout: () => ({ pid, startTime, socket: a.socket, runcRoot: a.runcRoot, dir }),
      };
    },
    stale(bootedAt) {
      try {
        if (fs.statSync(mockAgentEntry()).mtimeMs > bootedAt) return "stale (the mock agent was rebuilt since it booted)";
      } catch {
        /* no entry to compare: it was fine when it booted */
      }
      return null;
    },
  };
}

