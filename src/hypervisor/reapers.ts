// Each driver's static reaper, by the kind its VM record carries: `delete`
// undoes a dead shim's VM through here without naming a driver. Apart from
// drivers.ts because `delete` runs from the small bundle: a reaper loads only
// command builders, a driver the whole VM machinery.
import type { CommandRunner, HypervisorKind, ReapScope, Reaper, VmRecord } from "./types";
import { runCommand } from "./command";

/**
 * Loaded when a record of the kind is found: a delete with nothing to reap loads none. import(),
 * not require(): compiled, it is the same lazy require, and the unit tests' loader (which runs
 * these sources) resolves it.
 */
const REAPERS: Record<HypervisorKind, () => Promise<Reaper>> = {
  none: () => import("./host-agent-reap").then((m) => m.reap),
  qemu: () => import("./qemu/reap").then((m) => m.reap),
};

export const REAPER_KINDS = Object.keys(REAPERS) as HypervisorKind[];

/**
 * Undoes what rec says, as its driver would have on stopping. False when nothing was reaped
 * (the kind has no reaper in this shimlab, or the reaper gave up): the caller keeps the record
 * for a shimlab that can.
 */
export async function reapVm(rec: VmRecord, scope: ReapScope, warn: (m: string) => void, run: CommandRunner = runCommand): Promise<boolean> {
  const kind: unknown = rec.kind;
  if (typeof kind !== "string" || !Object.hasOwn(REAPERS, kind)) {
    warn(`VM record of hypervisor kind ${JSON.stringify(kind)}: this shimlab reaps ${REAPER_KINDS.map((k) => JSON.stringify(k)).join(" and ")} only; nothing reaped, the record is kept`);
    return false;
  }
  try {
    (await REAPERS[kind as HypervisorKind]())(rec, scope, { run, warn });
  } catch (e) {
    warn(`reaping the ${kind} VM (pid ${rec.pid}) failed, the record is kept: ${(e as Error).message}`);
    return false;
  }
  return true;
}
