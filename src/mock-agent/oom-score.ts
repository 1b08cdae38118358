// oom_score_adj below the agent's own. Lowering it needs CAP_SYS_RESOURCE;
// where the agent lacks it (the host agent inside a container whose bounding
// set drops it), runc's init fails with "failed to update
// /proc/self/oom_score_adj: Permission denied" and the pod never starts.
// containerd clamps for its CRI when told to (restrict_oom_score_adj); CRI-O
// never does and asks -998 for every infra container. The agent raises such a
// value to its own, as containerd's clamp does, and says so. A guest agent
// runs as the VM's root with every capability and never needs to.
import fs from "node:fs";

const CAP_SYS_RESOURCE = 24;

/** Whether this process may lower oom_score_adj (CAP_SYS_RESOURCE in its effective set). */
export function canLowerOomScore(status = fs.readFileSync("/proc/self/status", "utf8")): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return !!m && (BigInt(`0x${m[1]}`) & (1n << BigInt(CAP_SYS_RESOURCE))) !== 0n;
}

export function ownOomScoreAdj(): number {
  return Number(fs.readFileSync("/proc/self/oom_score_adj", "utf8").trim());
}

/** The value runc can set: the asked one, or the agent's own where it is lower and the agent may not lower it. */
export function clampOomScoreAdj(asked: number | undefined, own: number, mayLower: boolean): number | undefined {
  if (asked === undefined || mayLower || asked >= own) return asked;
  return own;
}
