// events: a fault on the shim's events before they leave it (the EventSink),
// one rule of the shim's SHIMLAB_EVENT_FAULTS list.
import { z } from "zod";
import { EVENT_FAULTS_ENV, type EventFaultRule } from "../event-faults";
import { topic, posInt } from "../../scenarios/format-values";
import { faultBase, type LaunchKind } from "./kind";

const schema = z.strictObject({
  ...faultBase,
  scope: z.literal("events"),
  action: z.enum(["drop", "delay", "duplicate", "reorder"]),
  topic: topic.optional().meta({ description: "only events of this topic; default: all" }),
  count: posInt.optional().meta({ description: "only the first N matching events; default: all" }),
  ms: posInt.optional().meta({ description: "delay: how long each event is held" }),
  window_size: z.int().min(2).optional().meta({ description: "reorder: events held, then sent newest first" }),
});

/** The rule the shim's FaultyEventSink reads. */
export function eventRule(f: z.infer<typeof schema>): EventFaultRule {
  if (f.action === "delay") return { action: "delay", topic: f.topic, ms: f.ms!, count: f.count };
  if (f.action === "reorder") return { action: "reorder", topic: f.topic, window: f.window_size!, count: f.count };
  return { action: f.action, topic: f.topic, count: f.count };
}

export const eventsFault: LaunchKind<typeof schema> = {
  schema,
  timed: false,
  doc: "faults on events before they leave the shim",
  carrier: `\`${EVENT_FAULTS_ENV}\` (a JSON list of rules), read by the fp shim`,
  fpShim: true,
  check(f, c) {
    if (f.action === "delay" && !f.ms) c.bad([], "an events delay needs ms");
    if (f.action === "reorder" && !f.window_size) c.bad([], "an events reorder needs window_size (>= 2)");
  },
  launch: (f) => ({ env: EVENT_FAULTS_ENV, item: eventRule(f) }),
};
