// A warm agent a parked shim daemon (src/shim/park.ts) holds while it waits: taken from the
// factory's pool, adopted by the daemon and dialled, before any `start` asks for the daemon. The pod
// the daemon becomes then finds its agent connected, and its path has no take in it (a round trip
// to the factory, the agent's adoption) and no dial. A daemon that is not handed out, or whose pod
// cannot use the agent (another configuration, an agent environment of its own), kills it: an agent
// serves one sandbox, and never one it was not taken for.
import type { Duplex } from "node:stream";
import { AGENT_VSOCK_PORT, HybridVsockTransport } from "../../agent/transport";
import { killWarmAgent } from "../rundir";
import { processAlive } from "../../util/proc";
import { cgroupParent } from "../../util/cgroup";
import { takeWarmAgent } from "./client";
import type { WarmAgent } from "./protocol";

export interface HeldAgent {
  agent: WarmAgent;
  factorySocket: string;
  agentRuntime: string;
  /** Where the agent puts its containers' cgroups (SHIMLAB_CGROUP_PARENT when it booted). */
  cgroupParent: string;
  /** The connection dialled while parked, for the sandbox's first connect. */
  conn: Duplex;
}

let held: HeldAgent | null = null;

/** Takes a warm agent for this process to hold, and dials it; null (holding nothing) when the factory has none to give. */
export async function holdWarmAgent(factorySocket: string, agentRuntime: string, timeoutMs: number): Promise<HeldAgent | null> {
  let agent: WarmAgent;
  try {
    agent = await takeWarmAgent(factorySocket, { kind: "none", agentRuntime, parked: true }, timeoutMs);
  } catch {
    return null;
  }
  try {
    const conn = await new HybridVsockTransport(agent.socket, AGENT_VSOCK_PORT).connect(AbortSignal.timeout(2_000));
    conn.on("error", () => {});
    held = { agent, factorySocket, agentRuntime, cgroupParent: cgroupParent(), conn };
    return held;
  } catch {
    killWarmAgent(agent);
    return null;
  }
}

/** The agent held, when it is alive and was taken for what `want` describes; from then on the caller's. Anything else is dropped. */
export function claimHeld(want: { factorySocket: string; agentRuntime: string; cgroupParent: string }): HeldAgent | null {
  const h = held;
  if (!h) return null;
  held = null;
  const fits = h.factorySocket === want.factorySocket && h.agentRuntime === want.agentRuntime && h.cgroupParent === want.cgroupParent;
  if (fits && !h.conn.destroyed && processAlive(h.agent.pid, h.agent.startTime)) return h;
  h.conn.destroy();
  killWarmAgent(h.agent);
  return null;
}

/** Kills the agent held, unclaimed, and removes its directory: synchronous, for an exiting process too. */
export function dropHeld(): void {
  const h = held;
  held = null;
  if (!h) return;
  h.conn.destroy();
  killWarmAgent(h.agent);
}
