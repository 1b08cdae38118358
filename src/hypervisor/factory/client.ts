// The shim's side of `shimlab factory`: take one warm agent, or say why not
// (no factory, an empty pool, a pool of another kind). Every failure is the
// caller's cue to boot its own: a factory only ever saves time.
import net from "node:net";
import { processStartTime } from "../../util/proc";
import { cgroupParent } from "../../util/cgroup";
import type { HypervisorKind } from "../types";
import type { FactoryRequest, FactoryResponse, FactoryStatus, WarmAgent } from "./protocol";

export type { WarmAgent } from "./protocol";

/** How long a take may take: a handout is one line each way and an adoption; past this, booting is no slower. */
const TAKE_TIMEOUT_MS = 2000;

export function factoryCall(socket: string, req: FactoryRequest, timeoutMs = TAKE_TIMEOUT_MS): Promise<FactoryResponse> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection({ path: socket });
    let text = "";
    const fail = (e: Error) => {
      clearTimeout(t);
      c.destroy();
      reject(e);
    };
    const t = setTimeout(() => fail(new Error(`the factory at ${socket} did not answer in ${timeoutMs} ms`)), timeoutMs);
    c.on("connect", () => c.write(JSON.stringify(req) + "\n"));
    c.on("data", (d) => {
      text += d.toString("utf8");
      const nl = text.indexOf("\n");
      if (nl < 0) {
        if (text.length > 1 << 16) fail(new Error("the factory's answer is too long"));
        return;
      }
      clearTimeout(t);
      c.end();
      try {
        resolve(JSON.parse(text.slice(0, nl)) as FactoryResponse);
      } catch {
        reject(new Error("the factory's answer is not JSON"));
      }
    });
    c.on("error", (e) => fail(new Error(`no factory at ${socket}: ${e.message}`)));
    c.on("end", () => fail(new Error("the factory hung up without an answer")));
  });
}

/** A warm agent for this process to hold; throws when the factory has none to give. */
/** parked: for a parked shim daemon to hold (held.ts), which the factory keeps apart from the pods' takes. */
export async function takeWarmAgent(
  socket: string,
  want: { kind: HypervisorKind; agentRuntime: string; cgroupParent?: string; shape?: string; nics?: number; parked?: boolean },
  timeoutMs = TAKE_TIMEOUT_MS,
): Promise<WarmAgent> {
  const startTime = processStartTime(process.pid);
  if (!startTime) throw new Error("cannot read this process's start time");
  // An agent computes its containers' cgroups from its own environment: it must be the one this shim's would have had.
  const r = await factoryCall(socket, { op: "take", kind: want.kind, agentRuntime: want.agentRuntime, cgroupParent: want.cgroupParent ?? cgroupParent(), pid: process.pid, startTime, ...(want.shape ? { shape: want.shape } : {}), ...(want.nics ? { nics: want.nics } : {}), ...(want.parked ? { parked: true } : {}) }, timeoutMs);
  if (!r.ok) throw new Error(r.error);
  if (!r.agent) throw new Error("the factory's answer has no agent");
  return r.agent;
}

export async function factoryStatus(socket: string, timeoutMs = TAKE_TIMEOUT_MS): Promise<FactoryStatus> {
  const r = await factoryCall(socket, { op: "status" }, timeoutMs);
  if (!r.ok) throw new Error(r.error);
  if (!r.status) throw new Error("the factory's answer has no status");
  return r.status;
}

/**
 * The status of a factory just started, once it answers and (unless `full` is false) its pool is
 * full; null when `gone()` says its process ended, or after timeoutMs.
 */
export async function untilFactoryReady(socket: string, o: { timeoutMs: number; full?: boolean; gone: () => boolean }): Promise<FactoryStatus | null> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const st = await factoryStatus(socket, 500).catch(() => null);
    if (st && (o.full === false || (st.ready >= st.size && (!st.daemons || st.daemons.ready >= st.daemons.size)))) return st;
    if (o.gone() || Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 50));
  }
}
