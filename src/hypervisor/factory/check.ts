// A pooled sandbox's first connection to its agent and a Health.Check, made by
// the factory before it counts the sandbox ready: the agent answers it (or the
// sandbox is not a warm one), and the code that serves a connection (the
// transport's handshake, ttrpc, the first call) has run once, off the pod's
// path. A taker's first connection to a host agent that had never served one
// took 4-6 ms longer, pinned; a guest agent's, under TCG, more.
import { AgentClient, type AgentApi } from "../../agent/client";
import type { Transport } from "../../agent/transport";
import type { Logger } from "../../util/logger";

/**
 * Whether the agent answers SERVING within timeoutMs, and then, when asked, the rehearsal's calls
 * (rehearse-calls.ts) as they should be answered; the connection is closed after.
 */
export async function checkAgent(transport: Transport, timeoutMs: number, o: { rehearse?: (agent: AgentApi) => Promise<unknown>; logger?: Logger } = {}): Promise<boolean> {
  let c: AgentClient;
  try {
    c = await AgentClient.connect(transport, { timeoutMs, timeouts: { checkMs: timeoutMs } });
  } catch {
    return false;
  }
  try {
    if (o.rehearse) await o.rehearse(c.agent);
    return true;
  } catch (e) {
    o.logger?.error("a warm agent's rehearsal of a pod's calls failed", { error: (e as Error).message });
    return false;
  } finally {
    c.close();
  }
}
