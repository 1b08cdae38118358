// A unix-socket proxy that applies toxics to the bytes it forwards: put it
// between containerd and a shim, or between a shim and its agent (a hybrid
// vsock handshake passes through it like any other bytes).
import fs from "node:fs";
import net from "node:net";
import { EventEmitter } from "node:events";
import { FrameReader, HEADER_LENGTH, MESSAGE_LENGTH_MAX, encodeFrame } from "../ttrpc/channel";
import { validateToxic, type Direction, type Toxic } from "./toxics";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface LinkState {
  bytes: number;
  frames: number;
  closed: boolean;
}

/** One direction of one connection: chunks in order, through the toxics, to the other side. */
class Link {
  private queue: Buffer[] = [];
  private busy = false;
  private ended = false;
  private readonly frames: FrameReader | null;
  /** Pause before writing a piece (slicer's delay). */
  private readonly waits = new WeakMap<Buffer, number>();
  readonly state: LinkState = { bytes: 0, frames: 0, closed: false };

  constructor(
    readonly dir: Direction,
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly toxics: () => Toxic[],
    private readonly conn: ProxyConnection,
  ) {
    const framed = () => this.toxics().some((t) => ["corrupt_frame", "oversize_frame", "bad_stream_id"].includes(t.spec.type));
    this.frames = framed() ? new FrameReader(Number.MAX_SAFE_INTEGER) : null;
    src.on("data", (c: Buffer) => {
      if (this.frames) {
        this.frames.push(c, (e) => {
          if (e.kind === "frame") {
            const f = Buffer.allocUnsafe(HEADER_LENGTH + e.body.length);
            f.writeUInt32BE(e.header.length, 0);
            f.writeUInt32BE(e.header.streamId, 4);
            f[8] = e.header.type;
            f[9] = e.header.flags;
            e.body.copy(f, HEADER_LENGTH);
            this.queue.push(f);
          }
        });
      } else this.queue.push(c);
      void this.pump();
    });
    src.on("end", () => {
      this.ended = true;
      void this.pump();
    });
  }

  private active(): Toxic[] {
    return this.toxics().filter((t) => t.stream === this.dir && this.conn.applies(t));
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.queue.length && !this.state.closed) {
        let pieces = [this.queue.shift()!];
        for (const t of this.active()) {
          const next: Buffer[] = [];
          for (const p of pieces) next.push(...(await this.apply(t, p)));
          pieces = next;
          if (this.state.closed) return;
        }
        for (const p of pieces) {
          const w = this.waits.get(p);
          if (w) await sleep(w);
          if (this.dst.destroyed) return;
          this.state.bytes += p.length;
          if (!this.dst.write(p)) await new Promise((r) => this.dst.once("drain", r));
        }
      }
      if (this.ended && !this.queue.length && !this.state.closed) {
        const slow = this.active().find((t) => t.spec.type === "slow_close");
        if (slow && slow.spec.type === "slow_close") await sleep(slow.spec.delay);
        this.dst.end();
      }
    } finally {
      this.busy = false;
    }
  }

  /** One toxic on one piece: the pieces that come out (none when it swallows them). */
  private async apply(t: Toxic, p: Buffer): Promise<Buffer[]> {
    const s = t.spec;
    switch (s.type) {
      case "latency":
        await sleep(Math.max(0, s.latency + (s.jitter ? (Math.random() * 2 - 1) * s.jitter : 0)));
        return [p];
      case "bandwidth":
        await sleep((p.length / (s.rate * 1024)) * 1000);
        return [p];
      case "slicer": {
        const out: Buffer[] = [];
        let off = 0;
        while (off < p.length) {
          const v = s.size_variation ?? 0;
          const n = Math.max(1, Math.round(s.average_size + (Math.random() * 2 - 1) * v));
          out.push(p.subarray(off, off + n));
          off += n;
        }
        // the delay (µs) goes between slices, so they reach the peer as separate reads
        if (s.delay) for (let i = 1; i < out.length; i++) this.waits.set(out[i], s.delay / 1000);
        return out;
      }
      case "timeout":
        // swallow: nothing passes; with a timeout, the connection is closed after it
        if (s.timeout > 0) setTimeout(() => this.conn.close(), s.timeout).unref();
        this.queue = [];
        return [];
      case "reset_peer":
        if (s.timeout) await sleep(s.timeout);
        this.conn.reset();
        return [];
      case "limit_data": {
        const left = s.bytes - this.state.bytes;
        if (left <= 0) {
          this.conn.close();
          return [];
        }
        if (p.length > left) {
          setImmediate(() => this.conn.close());
          return [p.subarray(0, left)];
        }
        return [p];
      }
      case "slow_close":
        return [p];
      case "corrupt_frame":
      case "oversize_frame":
      case "bad_stream_id": {
        this.state.frames++;
        if (this.state.frames % (s.every ?? 1) !== 0) return [p];
        const f = Buffer.from(p);
        if (s.type === "corrupt_frame") {
          // garble the body, keep the framing: the receiver must reject the message, not lose sync
          for (let i = HEADER_LENGTH; i < f.length; i++) f[i] ^= 0xa5;
          if (f.length === HEADER_LENGTH) f[0] = 0xff; // no body to garble: break the header instead
          return [f];
        }
        if (s.type === "bad_stream_id") {
          const id = f.readUInt32BE(4);
          f.writeUInt32BE(this.dir === "upstream" ? (id + 1) >>> 0 : (id + 1000) >>> 0, 4);
          return [f];
        }
        const streamId = f.readUInt32BE(4);
        return [encodeFrame(streamId, f[8], f[9], Buffer.alloc(MESSAGE_LENGTH_MAX + 1))];
      }
    }
  }
}

export class ProxyConnection {
  private readonly dice = new Map<Toxic, boolean>();
  readonly up: Link;
  readonly down: Link;

  constructor(
    readonly client: net.Socket,
    readonly server: net.Socket,
    toxics: () => Toxic[],
  ) {
    this.up = new Link("upstream", client, server, toxics, this);
    this.down = new Link("downstream", server, client, toxics, this);
    for (const s of [client, server]) s.on("error", () => this.close());
    client.on("close", () => this.close());
    server.on("close", () => this.close());
  }

  /** toxicity is drawn once per connection and toxic. */
  applies(t: Toxic): boolean {
    let d = this.dice.get(t);
    if (d === undefined) {
      d = Math.random() < (t.toxicity ?? 1);
      this.dice.set(t, d);
    }
    return d;
  }

  close(): void {
    this.up.state.closed = this.down.state.closed = true;
    this.client.destroy();
    this.server.destroy();
  }

  /** TCP would send an RST; a unix socket has none, so the closest is to drop it at once, unflushed. */
  reset(): void {
    this.up.state.closed = this.down.state.closed = true;
    for (const s of [this.client, this.server]) {
      const h = (s as unknown as { _handle?: { constructor?: { name?: string } } })._handle;
      if (h?.constructor?.name === "TCP") s.resetAndDestroy();
      else s.destroy();
    }
  }
}

export interface ProxyOptions {
  listen: string;
  upstream: string;
  toxics?: Toxic[];
}

/** Events: "connection" (conn), "refused" (when down). */
export class FaultProxy extends EventEmitter {
  private readonly toxics: Toxic[] = [];
  private readonly conns = new Set<ProxyConnection>();
  /** Accepted clients whose upstream is still connecting. */
  private readonly pending = new Set<net.Socket>();
  private server: net.Server | null = null;
  private enabled = true;
  connections = 0;

  constructor(readonly o: ProxyOptions) {
    super();
    for (const t of o.toxics ?? []) this.addToxic(t);
  }

  addToxic(t: Toxic): void {
    validateToxic(t);
    this.toxics.push(t);
  }

  removeToxic(name: string): void {
    const i = this.toxics.findIndex((t) => t.name === name);
    if (i >= 0) this.toxics.splice(i, 1);
  }

  /** Clears all toxics and re-enables the proxy (toxiproxy's POST /reset). */
  reset(): void {
    this.toxics.length = 0;
    this.enabled = true;
  }

  /** Like a toxiproxy proxy with enabled=false: existing links cut, new ones refused. */
  down(): void {
    this.enabled = false;
    for (const c of this.conns) c.close();
    for (const s of this.pending) s.destroy();
  }

  up(): void {
    this.enabled = true;
  }

  async start(): Promise<void> {
    fs.rmSync(this.o.listen, { force: true });
    this.server = net.createServer((client) => {
      if (!this.enabled) {
        this.emit("refused");
        client.destroy();
        return;
      }
      client.pause();
      this.pending.add(client);
      const server = net.createConnection({ path: this.o.upstream });
      server.on("connect", () => {
        this.pending.delete(client);
        if (client.destroyed || !this.enabled) {
          server.destroy();
          return;
        }
        const c = new ProxyConnection(client, server, () => this.toxics);
        this.conns.add(c);
        this.connections++;
        client.on("close", () => this.conns.delete(c));
        client.resume();
        this.emit("connection", c);
      });
      server.on("error", () => {
        this.pending.delete(client);
        client.destroy();
      });
    });
    await new Promise<void>((r) => this.server!.listen(this.o.listen, r));
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.close();
    for (const s of this.pending) s.destroy();
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    fs.rmSync(this.o.listen, { force: true });
  }
}
