// agent-rpc: the same failpoint grammar on one of the mock agent's methods,
// through the environment the shim passes on to the agent it starts.
import { z } from "zod";
import { AGENT_FAILPOINTS_ENV } from "../../mock-agent/failpoints";
import { failpointTerms } from "./failpoint-terms";
import { faultBase, type LaunchKind } from "./kind";

const schema = z.strictObject({
  ...faultBase,
  scope: z.literal("agent-rpc"),
  method: z
    .string()
    .regex(/^[A-Z][A-Za-z]+$/, { error: "an agent method name such as CreateContainer" })
    .meta({ description: "an agent method such as CreateContainer" }),
  failpoint: failpointTerms,
});

export const agentRpcFault: LaunchKind<typeof schema> = {
  schema,
  timed: false,
  doc: "the same grammar on the mock agent's methods",
  carrier: `\`${AGENT_FAILPOINTS_ENV}\` (a JSON map of method → terms)`,
  launch: (f) => ({ env: AGENT_FAILPOINTS_ENV, key: f.method, value: f.failpoint }),
};
