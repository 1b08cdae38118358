// Events as they leave the shim: wraps the EventSink closest to containerd, so
// whatever a fault does to them (drop, delay, reorder) is what the trace shows.
import type { MessageCodec } from "../proto/message";
import type { EventSink } from "../shim/publisher";
import { summarize, type TraceRecorder } from "./recorder";

export class TracedEventSink implements EventSink {
  constructor(
    private readonly inner: EventSink,
    private readonly rec: TraceRecorder,
  ) {}

  publish<I>(topic: string, codec: MessageCodec<unknown, I>, event: I): void {
    this.rec.record("event", { from: "shim", to: "containerd", topic, typeUrl: codec.typeName, event: summarize(codec as MessageCodec<unknown, unknown>, codec.create(event)) });
    this.inner.publish(topic, codec, event);
  }

  flush(timeoutMs: number): Promise<void> {
    return this.inner.flush(timeoutMs);
  }

  close(): void {
    this.inner.close();
  }
}
