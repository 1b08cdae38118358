// What `shimlab sniff` can decode: the shim APIs containerd speaks (task v2
// and v3, events), by full service name. Anything else is kept raw.
import { Task as TaskV2 } from "../gen/containerd.task.v2";
import { Task as TaskV3 } from "../gen/containerd.task.v3";
import { Events, type ForwardRequest } from "../gen/containerd.services.events.ttrpc.v1";
import type { ServiceDef } from "../ttrpc/service";
import { TASK_EVENT_TYPES } from "../harness/event-types";
import { summarize, type TraceRecorder } from "../trace/recorder";

export const SHIM_SERVICES: Record<string, ServiceDef> = { [TaskV2.name]: TaskV2 as ServiceDef, [TaskV3.name]: TaskV3 as ServiceDef };
export const EVENT_SERVICES: Record<string, ServiceDef> = { [Events.name]: Events as ServiceDef };

/** An event a shim forwards, recorded as the trace's `event` line (the same as shimlab's own shim records). */
export function recordForward(rec: TraceRecorder, req: ForwardRequest): boolean {
  const env = req.envelope;
  if (!env) return false;
  const typeUrl = env.event?.typeUrl ?? "";
  const codec = TASK_EVENT_TYPES[typeUrl];
  let event: Record<string, unknown> | undefined;
  try {
    event = codec && env.event ? summarize(codec, codec.decode(env.event.value)) : undefined;
  } catch {
    event = undefined;
  }
  rec.record("event", { from: "shim", to: "containerd", topic: env.topic, typeUrl, namespace: env.namespace, event: event ?? { raw: Buffer.from(env.event?.value ?? []).toString("hex") } });
  return true;
}
