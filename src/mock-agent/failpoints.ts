// Failpoints on the agent's own methods, set by whoever starts the agent:
// SHIMLAB_AGENT_FAILPOINTS='{"CreateContainer":"1*error(boom)","WaitProcess":"1*delay(2000)"}'
import type { Server } from "../ttrpc/server";
import type { FailpointTable } from "../faults/failpoint";
import type { Logger } from "../util/logger";
import { markUnusual } from "../util/code-cache";

export const AGENT_FAILPOINTS_ENV = "SHIMLAB_AGENT_FAILPOINTS";

export function installFailpoints(server: Server, env: NodeJS.ProcessEnv, log: Logger): FailpointTable | null {
  const raw = env[AGENT_FAILPOINTS_ENV];
  if (!raw) return null;
  // loaded only when asked for: a production agent's memory carries none of it
  markUnusual();
  const { FailpointTable, failpointInterceptor } = require("../faults/failpoint") as typeof import("../faults/failpoint");
  const table = new FailpointTable();
  const parsed = JSON.parse(raw) as Record<string, string>;
  for (const [m, t] of Object.entries(parsed)) table.set(m, t);
  server.use(failpointInterceptor(table, { onFire: (method, action) => log.warn("failpoint fired", { method, action: action.type }) }));
  log.info("agent failpoints installed", { methods: Object.keys(parsed).join(",") });
  return table;
}
