// forward: containerd's Events/Forward fails or stalls (the emulator's events
// endpoint answers Unavailable, or holds each call).
import { z } from "zod";
import { posInt } from "../../scenarios/format-values";
import { faultBase, type TimedKind } from "./kind";

const schema = z.strictObject({
  ...faultBase,
  scope: z.literal("forward"),
  action: z.enum(["unavailable", "delay"]),
  ms: posInt.optional().meta({ description: "delay: how long each Forward is held" }),
});

export const forwardFault: TimedKind<typeof schema> = {
  schema,
  timed: true,
  emulatorOnly: true,
  doc: "containerd's `Events/Forward` fails or stalls",
  carrier: "the harness (its events endpoint)",
  check(f, c) {
    if (f.action === "delay" && !f.ms) c.bad([], "a forward delay needs ms");
  },
  async activate(f, w) {
    w.forwardFault = { action: f.action, ms: f.ms ?? Infinity };
    return `Events/Forward ${f.action}${f.ms ? ` ${f.ms} ms` : ""}`;
  },
  async heal(_f, w) {
    w.forwardFault = null;
    w.releaseForward();
  },
};
