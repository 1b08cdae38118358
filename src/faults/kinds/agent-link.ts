// agent-link: a toxic on the link from the shim to its agent (the shim dials a
// fault proxy in front of the agent's socket; the hybrid-vsock handshake
// passes through it like any bytes).
import { z } from "zod";
import { AGENT_LINK_FAULTS_ENV } from "../agent-link";
import { faultBase, type LaunchKind } from "./kind";
import { checkToxic, toToxic, toxicSchema } from "./toxic";

const schema = z.strictObject({ ...faultBase, scope: z.literal("agent-link"), toxic: toxicSchema });

export const agentLinkFault: LaunchKind<typeof schema> = {
  schema,
  timed: false,
  doc: "a toxic on the shim→agent link (the hybrid-vsock handshake passes through it)",
  carrier: `\`${AGENT_LINK_FAULTS_ENV}\` (a JSON list of toxics), read by the fp shim`,
  fpShim: true,
  check: (f, c) => checkToxic(f.name, f.toxic, c),
  launch: (f) => ({ env: AGENT_LINK_FAULTS_ENV, item: toToxic(f.name, f.toxic) }),
};
