// A pooled sandbox's first connection to its agent and a Health.Check, made by
// the factory before it counts the sandbox ready: the agent answers it (or the
// sandbox is not a warm one), and the code that serves a connection (the
// transport's handshake, ttrpc, the first call) has run once, off the pod's
// path. A taker's first connection to a host agent that had never served one
// took 4-6 ms longer, pinned; a guest agent's, under TCG, more.
import { AgentClient } from "../../agent/client";
import type { Transport } from "../../agent/transport";

/** Whether the agent answers SERVING within timeoutMs; the connection is closed after. */
export async function checkAgent(transport: Transport, timeoutMs: number): Promise<boolean> {
  try {
    (await AgentClient.connect(transport, { timeoutMs, timeouts: { checkMs: timeoutMs } })).close();
    return true;
  } catch {
    return false;
  }
}
