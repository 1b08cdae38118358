// factory-link: the shim's link to `shimlab factory` (the scenario's factory
// is reached through a proxy, src/scenarios/world-factory.ts). die-mid-handout:
// the next take goes through, and as the factory's answer comes back (the
// agent adopted and out of the pool) the factory is killed and the answer
// never arrives. die-mid-daemon-handout: the same for `start`'s request for a
// parked shim daemon (out of the pool, told it was handed out, never claimed).
import { z } from "zod";
import { faultBase, type TimedKind } from "./kind";

const schema = z.strictObject({
  ...faultBase,
  scope: z.literal("factory-link"),
  action: z.enum(["die-mid-handout", "die-mid-daemon-handout"]),
});

export const factoryLinkFault: TimedKind<typeof schema> = {
  schema,
  timed: true,
  emulatorOnly: true,
  doc: "the factory of warm sandboxes dies with its answer in flight: to a shim's take (die-mid-handout: the agent adopted, the shim never told) or to start's request for a parked daemon (die-mid-daemon-handout: the daemon handed out, never claimed)",
  carrier: "the harness (a proxy on the factory's socket)",
  check(_f, c) {
    if (!c.factory) c.bad(["scope"], "a factory-link fault needs the scenario's factory (factory: { pool_size: N })");
  },
  async activate(f, w) {
    w.factoryFault = f.action;
    return `factory link: ${f.action} on the next ${f.action === "die-mid-handout" ? "take" : "request for a parked daemon"}`;
  },
  async heal(_f, w) {
    w.factoryFault = null;
  },
};
