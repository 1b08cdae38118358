// The agent's side of a virtio-serial port: one byte stream the host may
// drop and reopen. While no host is connected a read returns 0 at once, so a
// connection starts with the first bytes and ends with the next 0-byte read.
// A fake port with exactly those semantics stands in for /dev/vportNpM; one
// that also signals a host's coming while armed, as the kernel sends SIGIO to
// a port with O_ASYNC, stands in for the port as the agent uses it now.
import { describe, it, expect, afterEach } from "vitest";
import { Duplex } from "node:stream";
import { Server, Client, type ServiceDef } from "../../src/ttrpc";
import { KeyValue } from "../../src/gen/ttrpc";
import { servePort, type PortIo } from "../../src/mock-agent/serial";
import { hasNative, native } from "../../src/native";
import fs from "node:fs";
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

/**
 * The port with O_ASYNC: a host's coming signals, but only while armed (as the kernel signals only
 * a port with O_ASYNC set). idleReadMs: how long a read with no host takes to say 0, so that a host
 * can come while one is out.
 */
class SignallingPort extends FakePort {
  armed = false;
  arms: boolean[] = [];
  signals = 0;
  private signal: (() => void) | null = null;
  /** Called at each arming, before it takes effect (a host coming in between). */
  onArm: (() => void) | null = null;
  idleReadMs = 0;

  watchHost(hostMayHaveCome: () => void) {
    this.signal = hostMayHaveCome;
    return {
      arm: (on: boolean) => {
        if (on) this.onArm?.();
        this.arms.push(on);
        this.armed = on;
      },
    };
  }

  override connect(): Duplex {
    const d = super.connect();
    if (this.armed) {
      this.signals++;
      this.signal!();
    }
    return d;
  }

  override read(buf: Buffer, cb: (e: NodeJS.ErrnoException | null, n: number) => void): void {
    if (this.idleReadMs && !(this as unknown as { host: unknown }).host) {
      this.idleReads++;
      setTimeout(() => cb(null, 0), this.idleReadMs);
      return;
    }
    super.read(buf, cb);
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function setup(port: FakePort = new FakePort(), signalledPollMs?: number) {
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
  servePort(port, server, new FdLogger(null), 5, signalledPollMs);
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

  it("waits for a host's signal, not by reading every few ms, and serves it at once", async () => {
    const port = new SignallingPort();
    const { connections } = setup(port, 60_000);
    await new Promise((r) => setTimeout(r, 200));
    // one read, then one more once armed (a host may have come in between): then nothing until a signal
    expect(port.idleReads).toBe(2);
    expect(port.arms).toEqual([true]);
    const t0 = Date.now();
    const c = new Client(port.connect());
    cleanups.push(() => c.close());
    expect(await c.service(Echo, { timeoutMs: 2000 }).Echo({ key: "k", value: "v" })).toEqual({ key: "k", value: "v" });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(port.signals).toBe(1);
    // connected: no signals wanted (data would raise them too)
    expect(port.arms).toEqual([true, false]);
    c.close();
    port.disconnect();
    await new Promise((r) => setTimeout(r, 50));
    expect(port.arms).toEqual([true, false, true]);
    expect(connections()).toBe(1);
  });

  it("reads again when a host signalled while a read was out, whose 0 may be older than the host", async () => {
    const port = new SignallingPort();
    setup(port, 60_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(port.arms).toEqual([true]);
    port.idleReadMs = 100;
    // a spurious signal starts a slow read; the host comes while it is out, and its signal has no read to start
    const reads = port.idleReads;
    (port as unknown as { signal: () => void }).signal();
    await new Promise((r) => setTimeout(r, 20));
    expect(port.idleReads).toBe(reads + 1);
    const t0 = Date.now();
    const c = new Client(port.connect());
    cleanups.push(() => c.close());
    expect(await c.service(Echo, { timeoutMs: 2000 }).Echo({ key: "k", value: "v" })).toEqual({ key: "k", value: "v" });
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("looks once more after arming: a host that came before the arming sent no signal", async () => {
    const port = new SignallingPort();
    let c: Client | null = null;
    port.onArm = () => {
      if (!c && port.arms.length === 0) c = new Client(port.connect());
    };
    setup(port, 60_000);
    await new Promise((r) => setTimeout(r, 20));
    expect(c).not.toBeNull();
    expect(port.signals).toBe(0);
    cleanups.push(() => c!.close());
    const t0 = Date.now();
    expect(await c!.service(Echo, { timeoutMs: 2000 }).Echo({ key: "k", value: "v" })).toEqual({ key: "k", value: "v" });
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("polls after all when the port cannot be armed", async () => {
    const port = new SignallingPort();
    port.onArm = () => {
      throw new Error("EINVAL");
    };
    setup(port, 60_000);
    await new Promise((r) => setTimeout(r, 100));
    expect(port.idleReads).toBeGreaterThan(5); // the 5 ms poll of setup(), not the signalled one
    const c = new Client(port.connect());
    cleanups.push(() => c.close());
    expect(await c.service(Echo, { timeoutMs: 2000 }).Echo({ key: "k", value: "v" })).toEqual({ key: "k", value: "v" });
  });
});

describe.skipIf(!hasNative())("native setAsync", () => {
  it("sets O_ASYNC with this process as the owner, and clears it", async () => {
    const p = native().pipe();
    try {
      const flags = () => parseInt(/^flags:\s+([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${p.read}`, "utf8"))![1], 8) & 0o20000; // O_ASYNC (FASYNC)
      expect(flags()).toBe(0);
      let signals = 0;
      const on = () => signals++;
      process.on("SIGIO", on);
      try {
        native().setAsync(p.read, true);
        expect(flags()).toBe(0o20000);
        fs.writeSync(p.write, "x");
        for (let i = 0; i < 50 && !signals; i++) await new Promise((r) => setTimeout(r, 10));
        expect(signals).toBeGreaterThan(0);
        native().setAsync(p.read, false);
        expect(flags()).toBe(0);
      } finally {
        process.removeListener("SIGIO", on);
      }
      expect(() => native().setAsync(-1, true)).toThrow(/fcntl/);
    } finally {
      native().closeFd(p.read);
      native().closeFd(p.write);
    }
  });
});
