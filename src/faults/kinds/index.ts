// The fault kinds a scenario may name, in one registry: the scenario format
// composes its `faults` entries from their schemas, the loader runs their
// checks, the world launches the shim with what the fixed ones carry, the
// runner activates and heals the timed ones, and the fault table of
// scenarios/README.md is generated from them. A new kind is one file here and
// one line in FAULT_KINDS.
import { z } from "zod";
import { agentLinkFault } from "./agent-link";
import { agentRpcFault } from "./agent-rpc";
import { containerdLinkFault } from "./containerd-link";
import { eventsFault } from "./events";
import { forwardFault } from "./forward";
import { factoryLinkFault } from "./factory-link";
import { processFault } from "./process";
import { taskRpcFault } from "./task-rpc";
import { scopeOf, type FaultCheck, type FaultKind, type FaultWorld, type Launch } from "./kind";

export type { FaultCheck, FaultKind, FaultWorld, Launch } from "./kind";

/** In the order the docs list them and a wrong scope's message names them. */
export const FAULT_KINDS = [taskRpcFault, agentRpcFault, eventsFault, forwardFault, containerdLinkFault, agentLinkFault, factoryLinkFault, processFault] as const;

export const faultSchema = z
  .discriminatedUnion("scope", [taskRpcFault.schema, agentRpcFault.schema, eventsFault.schema, forwardFault.schema, containerdLinkFault.schema, agentLinkFault.schema, factoryLinkFault.schema, processFault.schema])
  .meta({ id: "fault", description: "a fault: its name, its scope (the kind) and the kind's keys" });

export type FaultDef = z.infer<typeof faultSchema>;
export type FaultScope = FaultDef["scope"];

const BY_SCOPE = new Map<string, FaultKind>(FAULT_KINDS.map((k) => [scopeOf(k as FaultKind), k as FaultKind]));

export function kindOf(f: Pick<FaultDef, "scope">): FaultKind {
  const k = BY_SCOPE.get(f.scope);
  if (!k) throw new Error(`no fault kind ${JSON.stringify(f.scope)}`);
  return k;
}

/** The kind's own checks of one fault (paths relative to the fault). */
export function checkFault(f: FaultDef, c: FaultCheck): void {
  kindOf(f).check?.(f as never, c);
}

/** What the faults fixed at shim start add to its launch: environment variables and annotations of the pod's sandbox bundle. */
export interface ShimLaunch {
  env: Record<string, string>;
  annotations: Record<string, string>;
}

/**
 * The shim's fault environment and bundle annotations for these faults, in
 * the formats the shim (or a failpoint shim) and the agent read:
 * SHIMLAB_EVENT_FAULTS and SHIMLAB_AGENT_LINK_FAULTS JSON lists,
 * SHIMLAB_AGENT_FAILPOINTS a JSON map, io.containerd.runtime.v2.shim.failpoint.<Method>
 * annotations. `extra` appends items to a list variable (mutants made of event faults).
 */
export function launchFaults(faults: readonly FaultDef[], extra: Record<string, readonly unknown[]> = {}): ShimLaunch {
  const lists = new Map<string, unknown[]>();
  const maps = new Map<string, Record<string, string>>();
  const annotations: Record<string, string> = {};
  const add = (l: Launch) => {
    if ("annotation" in l) annotations[l.annotation] = l.value;
    else if ("item" in l) lists.set(l.env, [...(lists.get(l.env) ?? []), l.item]);
    else maps.set(l.env, { ...maps.get(l.env), [l.key]: l.value });
  };
  for (const f of faults) {
    const k = kindOf(f);
    if (!k.timed) add(k.launch(f as never));
  }
  for (const [env, items] of Object.entries(extra)) for (const item of items) add({ env, item });
  const env: Record<string, string> = {};
  for (const [k, m] of maps) env[k] = JSON.stringify(m);
  for (const [k, l] of lists) env[k] = JSON.stringify(l);
  return { env, annotations };
}

/** Applies a timed fault; what it did, for the timeline. */
export function activateFault(f: FaultDef, w: FaultWorld): Promise<string> {
  const k = kindOf(f);
  if (!k.timed) throw new Error(`fault ${f.name} (scope ${f.scope}) is fixed when the shim starts`);
  return k.activate(f as never, w);
}

export function healFault(f: FaultDef, w: FaultWorld): Promise<void> {
  const k = kindOf(f);
  if (!k.timed) throw new Error(`fault ${f.name} (scope ${f.scope}) is fixed when the shim starts`);
  return k.heal(f as never, w);
}

/** containerd must reach the shim through a fault proxy (a link fault may come at any time). */
/** Whether a scenario's faults need the failpoint shim (the production shim ignores them). */
export function needsFpShim(faults: readonly FaultDef[]): boolean {
  return faults.some((f) => kindOf(f).fpShim);
}

export function needsShimLinkProxy(faults: readonly FaultDef[]): boolean {
  return faults.some((f) => kindOf(f).needsShimLinkProxy);
}
