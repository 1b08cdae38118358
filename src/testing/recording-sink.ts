// An EventSink that keeps what the Task service publishes, for tests of the
// events' order and fields. Each event is encoded and decoded again, so a test
// reads what containerd would read off the wire (defaults filled in, fields
// the codec does not know gone), not the object the service happened to build.
import type { MessageCodec } from "../proto/message";
import type { EventSink } from "../shim/publisher";

export interface RecordedEvent {
  topic: string;
  typeUrl: string;
  /** The event as decoded from its wire form. */
  event: Record<string, unknown>;
}

export class RecordingSink implements EventSink {
  readonly events: RecordedEvent[] = [];
  private waiters: { match: (e: RecordedEvent) => boolean; resolve: (e: RecordedEvent) => void }[] = [];
  private closed = false;

  publish<I>(topic: string, codec: MessageCodec<unknown, I>, event: I): void {
    if (this.closed) return;
    const e: RecordedEvent = { topic, typeUrl: codec.typeName, event: codec.decode(codec.encode(event)) as Record<string, unknown> };
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(e)) return true;
      w.resolve(e);
      return false;
    });
  }

  /** Topics in publishing order, each with the container (and exec or process) it is about. */
  get trail(): string[] {
    return this.events.map((e) => {
      const who = [e.event.containerId, e.event.execId || (e.topic === "/tasks/exit" && e.event.id !== e.event.containerId ? e.event.id : "")].filter(Boolean).join("/");
      return `${e.topic} ${who}`;
    });
  }

  of(topic: string): RecordedEvent[] {
    return this.events.filter((e) => e.topic === topic);
  }

  /** The first event, already published or still to come, that matches; rejects after timeoutMs. */
  next(match: (e: RecordedEvent) => boolean, timeoutMs = 5_000): Promise<RecordedEvent> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no matching event within ${timeoutMs} ms; seen: ${this.trail.join(", ")}`));
      }, timeoutMs);
      const done = (e: RecordedEvent) => {
        clearTimeout(timer);
        resolve(e);
      };
      this.waiters.push({ match, resolve: done });
    });
  }

  async flush(): Promise<void> {}

  close(): void {
    this.closed = true;
  }
}
