// A toxic as a scenario writes it (containerd-link and agent-link faults):
// toxiproxy's `{ type, stream, toxicity, …attributes }`, each type with exactly
// its own attributes, and how it becomes the proxy's Toxic.
import { z } from "zod";
import { TOXIC_TYPES, validateToxic, type Toxic, type ToxicSpec } from "../toxics";
import type { FaultCheck } from "./kind";

const n = z.int().min(0);
const pos = z.int().min(1);

const common = {
  stream: z.enum(["upstream", "downstream"]).optional().meta({ description: "upstream: client→server; downstream (default): server→client" }),
  toxicity: z
    .union([z.number().min(0).max(1), z.string().regex(/^(0(\.\d+)?|1(\.0+)?)$/)], { error: "a probability between 0 and 1" })
    .optional()
    .meta({ description: "the probability, drawn once per connection, that the toxic applies (default 1)" }),
};

const toxicOf = <T extends (typeof TOXIC_TYPES)[number], A extends z.ZodRawShape>(type: T, attrs: A) => z.strictObject({ type: z.literal(type), ...common, ...attrs });

export const toxicSchema = z
  .discriminatedUnion("type", [
    toxicOf("latency", { latency: n.meta({ description: "ms added" }), jitter: n.optional() }),
    toxicOf("bandwidth", { rate: pos.meta({ description: "KB/s" }) }),
    toxicOf("slicer", { average_size: pos, size_variation: n.optional(), delay: n.optional().meta({ description: "µs between slices" }) }),
    toxicOf("timeout", { timeout: n.meta({ description: "ms before the connection closes; 0: never, data is swallowed" }) }),
    toxicOf("reset_peer", { timeout: n.optional() }),
    toxicOf("limit_data", { bytes: n }),
    toxicOf("slow_close", { delay: n }),
    toxicOf("corrupt_frame", { every: pos.optional() }),
    toxicOf("oversize_frame", { every: pos.optional() }),
    toxicOf("bad_stream_id", { every: pos.optional() }),
  ])
  .meta({ id: "toxic", description: "a toxiproxy toxic, or a frame-aware one: corrupt_frame, oversize_frame, bad_stream_id" });

export type ToxicDef = z.infer<typeof toxicSchema>;

export function toToxic(name: string, t: ToxicDef): Toxic {
  const { type, stream, toxicity, ...attrs } = t;
  return { name, stream: stream ?? "downstream", toxicity: toxicity === undefined ? undefined : Number(toxicity), spec: { type, ...attrs } as ToxicSpec };
}

/** The proxy's own checks, so that what a scenario passes is what the proxy (or the shim reading it from its environment) accepts. */
export function checkToxic(name: string, t: ToxicDef, c: FaultCheck): void {
  try {
    validateToxic(toToxic(name, t));
  } catch (e) {
    c.bad(["toxic"], (e as Error).message);
  }
}
