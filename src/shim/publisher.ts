// Task events to containerd: Events/Forward on TTRPC_ADDRESS, one at a time
// from one queue so they arrive in the order they were published, with the
// Go shim's retry policy (5 tries, 1 s × n apart, 5 s per Forward). A flush
// retries at once instead of sleeping out a backoff (see flush).
import { Client } from "../ttrpc/client";
import { Events } from "../gen/containerd.services.events.ttrpc.v1";
import type { MessageCodec } from "../proto/message";
import type { Logger } from "../util/logger";
import { nowTimestamp } from "../util/time";
import type { TimestampInit } from "../gen/google.protobuf";

export interface PublishedEvent {
  topic: string;
  typeUrl: string;
  /** The decoded event, for traces and tests. */
  event: unknown;
  value: Buffer;
  timestamp: TimestampInit;
}

/** Where the task service sends events; faults and traces wrap this interface. */
export interface EventSink {
  publish<I>(topic: string, codec: MessageCodec<unknown, I>, event: I): void;
  /** Resolves once everything queued so far was delivered or given up on. */
  flush(timeoutMs: number): Promise<void>;
  close(): void;
}

export interface PublisherOptions {
  address: string;
  namespace: string;
  logger: Logger;
  maxQueue?: number;
  retries?: number;
  forwardTimeoutMs?: number;
  retryDelayMs?: number;
  /** Each event as it is sent (for traces). */
  onSend?: (e: PublishedEvent) => void;
}

interface Queued {
  e: PublishedEvent;
  tries: number;
}

export class Publisher implements EventSink {
  private readonly queue: Queued[] = [];
  private client: Client | null = null;
  private sending = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Ends the backoff the queue's head is sleeping, if it is. */
  private wake: (() => void) | null = null;

  constructor(private readonly o: PublisherOptions) {}

  publish<I>(topic: string, codec: MessageCodec<unknown, I>, event: I): void {
    if (this.closed) return;
    const e: PublishedEvent = { topic, typeUrl: codec.typeName, event, value: codec.encode(event), timestamp: nowTimestamp() };
    if (this.queue.length >= (this.o.maxQueue ?? 2048)) {
      this.o.logger.error("event queue full; dropping event", { topic });
      return;
    }
    this.queue.push({ e, tries: 0 });
    void this.pump();
  }

  private async connect(): Promise<Client> {
    if (this.client && !this.client.isClosed) return this.client;
    this.client = await Client.dial(this.o.address, { connectTimeoutMs: 5_000 });
    return this.client;
  }

  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length && !this.closed) {
        const q = this.queue[0];
        try {
          const c = await this.connect();
          this.o.onSend?.(q.e);
          await c.call(
            Events.name,
            "Forward",
            Events.methods.Forward.requestType,
            {
              envelope: {
                timestamp: q.e.timestamp,
                namespace: this.o.namespace,
                topic: q.e.topic,
                event: { typeUrl: q.e.typeUrl, value: q.e.value },
              },
            },
            Events.methods.Forward.responseType,
            { timeoutMs: this.o.forwardTimeoutMs ?? 5_000, metadata: { "containerd-namespace-ttrpc": this.o.namespace } },
          );
          this.queue.shift();
        } catch (err) {
          q.tries++;
          const max = this.o.retries ?? 5;
          if (q.tries >= max) {
            this.o.logger.error("evicting event after retries", { topic: q.e.topic, tries: q.tries, error: (err as Error).message });
            this.queue.shift();
            continue;
          }
          this.o.logger.warn("publishing event failed; will retry", { topic: q.e.topic, tries: q.tries, error: (err as Error).message });
          this.client?.close();
          this.client = null;
          await this.backoff((this.o.retryDelayMs ?? 1000) * q.tries);
        }
      }
    } finally {
      this.sending = false;
      if (!this.queue.length) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private backoff(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  /**
   * The shim flushes as it exits, mostly because containerd shut it down, and
   * containerd calling proves it is back: an event that failed while it was
   * down (a restart) would otherwise keep the shim alive until its backoff
   * ends, up to the whole timeout after its last task is gone. So the head is
   * retried now; if that fails too (containerd is really gone), the next
   * backoff runs within timeoutMs as before.
   */
  flush(timeoutMs: number): Promise<void> {
    if (!this.queue.length && !this.sending) return Promise.resolve();
    this.wake?.();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  close(): void {
    this.closed = true;
    this.client?.close();
    this.wake?.();
    for (const w of this.idleWaiters.splice(0)) w();
  }
}

/** No containerd to tell (CRI-O sets no TTRPC_ADDRESS): events are only logged, as Kata does. */
export class LogOnlySink implements EventSink {
  constructor(
    private readonly logger: Logger,
    private readonly onSend?: (e: PublishedEvent) => void,
  ) {}

  publish<I>(topic: string, codec: MessageCodec<unknown, I>, event: I): void {
    this.onSend?.({ topic, typeUrl: codec.typeName, event, value: codec.encode(event), timestamp: nowTimestamp() });
    this.logger.info("event", { topic });
  }

  async flush(): Promise<void> {}

  close(): void {}
}
