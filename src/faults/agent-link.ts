// Wire faults between the shim and its agent: when SHIMLAB_AGENT_LINK_FAULTS
// holds a JSON list of toxics, the agent's socket is reached through a
// FaultProxy (the hybrid-vsock handshake passes through it like any bytes),
// e.g. [{"stream":"upstream","spec":{"type":"timeout","timeout":0}}] makes
// the agent's CONNECT reply never come (kata#12671).
import { FaultProxy } from "./proxy";
import { validateToxic, type Toxic } from "./toxics";

export const AGENT_LINK_FAULTS_ENV = "SHIMLAB_AGENT_LINK_FAULTS";

export function parseLinkToxics(json: string, what = AGENT_LINK_FAULTS_ENV): Toxic[] {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    throw new Error(`${what}: not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(v)) throw new Error(`${what}: want a JSON list of toxics`);
  v.forEach((t, i) => {
    try {
      validateToxic(t as Toxic);
    } catch (e) {
      throw new Error(`${what}[${i}]: ${(e as Error).message}`);
    }
  });
  return v as Toxic[];
}

/** Starts a proxy on `listen` in front of the agent's socket; null when no faults are configured. */
export async function interposeAgentLink(env: NodeJS.ProcessEnv, agentSocket: string, listen: string): Promise<FaultProxy | null> {
  const raw = env[AGENT_LINK_FAULTS_ENV];
  if (!raw) return null;
  const proxy = new FaultProxy({ listen, upstream: agentSocket, toxics: parseLinkToxics(raw) });
  await proxy.start();
  return proxy;
}
