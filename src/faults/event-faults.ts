// Faults on the shim's events, between the Task service and containerd:
// drop, delay, duplicate and reorder — the gap no other tool fills. Wraps the
// EventSink interface; the daemon installs it when SHIMLAB_EVENT_FAULTS holds
// a JSON list of rules, e.g.
//   [{"action":"drop","topic":"/tasks/exit","count":1},
//    {"action":"delay","topic":"/tasks/start","ms":500},
//    {"action":"duplicate","topic":"/tasks/exit"},
//    {"action":"reorder","window":2}]
import type { MessageCodec } from "../proto/message";
import type { EventSink } from "../shim/publisher";

export type EventFaultRule =
  | { action: "drop"; topic?: string; count?: number; probability?: number }
  | { action: "delay"; topic?: string; ms: number; count?: number }
  | { action: "duplicate"; topic?: string; count?: number }
  /** Holds events until `window` are pending, then sends them newest first. */
  | { action: "reorder"; window: number; topic?: string; count?: number };

export const EVENT_FAULTS_ENV = "SHIMLAB_EVENT_FAULTS";

export function parseEventFaults(json: string): EventFaultRule[] {
  let rules: unknown;
  try {
    rules = JSON.parse(json);
  } catch (e) {
    throw new Error(`${EVENT_FAULTS_ENV}: not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(rules)) throw new Error(`${EVENT_FAULTS_ENV}: want a JSON list of rules`);
  rules.forEach((r, i) => {
    const a = (r as { action?: string }).action;
    if (!["drop", "delay", "duplicate", "reorder"].includes(a as string)) throw new Error(`${EVENT_FAULTS_ENV}[${i}].action: want drop, delay, duplicate or reorder, not ${JSON.stringify(a)}`);
    if (a === "delay" && typeof (r as { ms?: number }).ms !== "number") throw new Error(`${EVENT_FAULTS_ENV}[${i}]: delay needs ms`);
    if (a === "reorder" && !((r as { window?: number }).window! >= 2)) throw new Error(`${EVENT_FAULTS_ENV}[${i}]: reorder needs window >= 2`);
  });
  return rules as EventFaultRule[];
}

interface Pending {
  topic: string;
  codec: MessageCodec<unknown, unknown>;
  event: unknown;
}

export class FaultyEventSink implements EventSink {
  private readonly used = new Map<EventFaultRule, number>();
  private held: Pending[] = [];
  private inFlight = 0;

  constructor(
    private readonly inner: EventSink,
    private readonly rules: EventFaultRule[],
    private readonly onFault?: (action: string, topic: string) => void,
  ) {}

  private take(topic: string, action: EventFaultRule["action"]): EventFaultRule | undefined {
    for (const r of this.rules) {
      if (r.action !== action) continue;
      if (r.topic && r.topic !== topic) continue;
      const n = this.used.get(r) ?? 0;
      if (r.count !== undefined && n >= r.count) continue;
      if (r.action === "drop" && r.probability !== undefined && Math.random() >= r.probability) continue;
      this.used.set(r, n + 1);
      return r;
    }
    return undefined;
  }

  publish<I>(topic: string, codec: MessageCodec<unknown, I>, event: I): void {
    if (this.take(topic, "drop")) {
      this.onFault?.("drop", topic);
      return;
    }
    const reorder = this.rules.find((r) => r.action === "reorder" && (!r.topic || r.topic === topic)) as Extract<EventFaultRule, { action: "reorder" }> | undefined;
    if (reorder && this.take(topic, "reorder")) {
      this.held.push({ topic, codec: codec as MessageCodec<unknown, unknown>, event });
      if (this.held.length >= reorder.window) {
        this.onFault?.("reorder", this.held.map((h) => h.topic).join(","));
        const out = this.held.reverse();
        this.held = [];
        for (const h of out) this.send(h.topic, h.codec, h.event);
      }
      return;
    }
    this.send(topic, codec as MessageCodec<unknown, unknown>, event);
  }

  private send(topic: string, codec: MessageCodec<unknown, unknown>, event: unknown): void {
    const delay = this.take(topic, "delay") as Extract<EventFaultRule, { action: "delay" }> | undefined;
    const dup = this.take(topic, "duplicate");
    const go = () => {
      this.inner.publish(topic, codec, event);
      if (dup) {
        this.onFault?.("duplicate", topic);
        this.inner.publish(topic, codec, event);
      }
    };
    if (delay) {
      this.onFault?.("delay", topic);
      this.inFlight++;
      setTimeout(() => {
        this.inFlight--;
        go();
      }, delay.ms);
    } else go();
  }

  async flush(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // events held for reordering go out as they are
    for (const h of this.held.splice(0)) this.inner.publish(h.topic, h.codec, h.event);
    await this.inner.flush(Math.max(0, deadline - Date.now()));
  }

  close(): void {
    this.inner.close();
  }
}
