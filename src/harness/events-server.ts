// containerd's events endpoint as a shim sees it: Events/Forward on
// TTRPC_ADDRESS, validating each envelope the way containerd does, and
// recording everything for checks and traces.
import fs from "node:fs";
import net from "node:net";
import { EventEmitter } from "node:events";
import { Server } from "../ttrpc/server";
import { Events } from "../gen/containerd.services.events.ttrpc.v1";
import { invalidArgument } from "../ttrpc/status";
import { toPlain } from "../proto/message";
import { TASK_EVENT_TYPES } from "./event-types";
import type { Interceptor } from "../ttrpc/server";

export interface RecordedEvent {
  /** Order of arrival, from 0. */
  seq: number;
  topic: string;
  namespace: string;
  typeUrl: string;
  /** The decoded payload as a plain object (enums by name, defaults dropped). */
  event: Record<string, any>;
  /** The envelope's timestamp, in ms since the epoch. */
  timestamp: number;
  /** When it arrived here (performance.now() scale). */
  receivedAt: number;
}

const IDENT = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;

export class EventsServer extends EventEmitter {
  readonly events: RecordedEvent[] = [];
  private readonly server = new Server();
  private listener: net.Server | null = null;

  constructor(readonly socketPath: string) {
    super();
    this.server.register(Events, {
      Forward: (req) => {
        const env = req.envelope;
        if (!env) throw invalidArgument("envelope must be set");
        if (!env.timestamp || (env.timestamp.seconds === 0 && env.timestamp.nanos === 0)) throw invalidArgument("timestamp must be set on forwarded event");
        if (!IDENT.test(env.namespace)) throw invalidArgument(`namespace ${JSON.stringify(env.namespace)}: invalid identifier`);
        if (!env.topic.startsWith("/")) throw invalidArgument(`topic ${JSON.stringify(env.topic)} must start with '/'`);
        if (env.topic.split("/").slice(1).some((p) => !IDENT.test(p))) throw invalidArgument(`topic ${JSON.stringify(env.topic)}: identifier must not be empty`);
        const typeUrl = env.event?.typeUrl ?? "";
        const codec = TASK_EVENT_TYPES[typeUrl];
        let event: Record<string, any> = {};
        if (codec) event = toPlain(codec, codec.decode(env.event!.value));
        else event = { _undecodable: typeUrl };
        const rec: RecordedEvent = {
          seq: this.events.length,
          topic: env.topic,
          namespace: env.namespace,
          typeUrl,
          event,
          timestamp: env.timestamp.seconds * 1000 + Math.floor(env.timestamp.nanos / 1e6),
          receivedAt: performance.now(),
        };
        this.events.push(rec);
        this.emit("event", rec);
        return {};
      },
    });
  }

  /** Faults on the events endpoint (Forward unavailable, delays) plug in here. */
  use(i: Interceptor): this {
    this.server.use(i);
    return this;
  }

  async listen(): Promise<void> {
    fs.rmSync(this.socketPath, { force: true });
    this.listener = net.createServer();
    this.server.serve(this.listener);
    await new Promise<void>((r) => this.listener!.listen(this.socketPath, r));
  }

  async close(): Promise<void> {
    await this.server.close();
    fs.rmSync(this.socketPath, { force: true });
  }

  /** Resolves with the first recorded event matching pred (past or future). */
  waitFor(pred: (e: RecordedEvent) => boolean, timeoutMs = 10_000, what = "event"): Promise<RecordedEvent> {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.removeListener("event", on);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got: ${this.events.map((e) => e.topic).join(", ") || "nothing"}`));
      }, timeoutMs);
      const on = (e: RecordedEvent) => {
        if (!pred(e)) return;
        clearTimeout(t);
        this.removeListener("event", on);
        resolve(e);
      };
      this.on("event", on);
    });
  }

  forContainer(id: string): RecordedEvent[] {
    return this.events.filter((e) => e.event.containerId === id);
  }
}
