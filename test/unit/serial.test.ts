// The agent's side of a virtio-serial port: one byte stream the host may
// drop and reopen. While no host is connected a read returns 0 at once, so a
// connection starts with the first bytes and ends with the next 0-byte read.
// A fake port with exactly those semantics stands in for /dev/vportNpM.
import { describe, it, expect, afterEach } from "vitest";
import { Duplex } from "node:stream";
import { Server, Client, type ServiceDef } from "../../src/ttrpc";
import { KeyValue } from "../../src/gen/ttrpc";
import { servePort, type PortIo } from "../../src/mock-agent/serial";
import { FdLogger } from "../../src/util/logger";

const Echo = { name: "t.Echo", methods: { Echo: { name: "Echo", requestType: KeyValue, responseType: KeyValue } } } as const satisfies ServiceDef;

class FakePort implements PortIo {
  private host: Duplex | null = null;
  private pending: Buffer[] = [];
  private waiter: { buf: Buffer; cb: (e: NodeJS.ErrnoException | null, n: number) => void } | null = null;
  idleReads = 0;
  dropped = 0;

  /** The host side of one connection (what QEMU's chardev socket would give). */
  connect(): Duplex {
    const port = this;
    const d = new Duplex({
      read() {},
      write(chunk: Buffer, _e, cb) {
        if (port.host === d) {
          port.pending.push(chunk);
          port.wake();
        }
        cb();
      },
    });
    this.host = d;
    return d;
  }

  disconnect(): void {
    this.host?.push(null);
    this.host?.destroy();
    this.host = null;
    this.pending = [];
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = null;
    this.read(w.buf, w.cb);
  }

  read(buf: Buffer, cb: (e: NodeJS.ErrnoException | null, n: number) => void): void {
    if (!this.host) {
      this.idleReads++;
      setImmediate(() => cb(null, 0));
      return;
    }
    const next = this.pending.shift();
    if (!next) {
      this.waiter = { buf, cb };
      return;
    }
    const n = next.copy(buf);
    if (n < next.length) this.pending.unshift(next.subarray(n));
    setImmediate(() => cb(null, n));
  }

  write(buf: Buffer, off: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void): void {
    const b = buf.subarray(off);
    if (this.host) this.host.push(Buffer.from(b));
    else this.dropped += b.length;
    setImmediate(() => cb(null, b.length));
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function setup() {
  const port = new FakePort();
  const server = new Server();
  let release!: () => void;
  const slow = new Promise<void>((r) => (release = r));
  let connections = 0;
  server.on("connection", () => connections++);
  server.register(Echo, {
    Echo: async (r) => {
      if (r.key === "slow") await slow;
      return { key: r.key, value: r.value };
    },
  });
  servePort(port, server, new FdLogger(null), 5);
  cleanups.push(() => server.close());
  return { port, release, connections: () => connections };
}

describe("virtio-serial port serving", () => {
  it("serves a host, and the next host after the first went away", async () => {
    const { port, connections } = setup();
    for (let i = 0; i < 3; i++) {
      const c = new Client(port.connect());
      const echo = c.service(Echo, { timeoutMs: 2000 });
      expect(await echo.Echo({ key: `k${i}`, value: "v" })).toEqual({ key: `k${i}`, value: "v" });
      c.close();
      port.disconnect();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(connections()).toBe(3);
    expect(port.idleReads).toBeGreaterThan(0); // it kept looking while nobody was there
  });

  it("never writes a reply for a host that left into the next host's stream", async () => {
    const { port, release } = setup();
    const c1 = new Client(port.connect());
    const late = c1.service(Echo, { timeoutMs: 5000 }).Echo({ key: "slow", value: "for-the-first-host" }).catch((e) => e);
    await new Promise((r) => setTimeout(r, 30));
    c1.close();
    port.disconnect();
    await new Promise((r) => setTimeout(r, 20));
    const c2 = new Client(port.connect());
    cleanups.push(() => c2.close());
    const p2 = c2.service(Echo, { timeoutMs: 2000 }).Echo({ key: "slow", value: "for-the-second-host" });
    await new Promise((r) => setTimeout(r, 30));
    release(); // both handlers answer now; both requests had stream id 1
    expect(await p2).toEqual({ key: "slow", value: "for-the-second-host" });
    expect(await late).toBeInstanceOf(Error);
  });
});
