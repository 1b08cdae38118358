// The agent transports behind one interface: address parsing, dialling with
// a deadline and retries while a VM boots, AF_VSOCK's error paths (no vsock
// peer exists on these machines), the hybrid vsock handshake, and the
// virtio-serial chardev's one stream with reconnects.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import { parseAgentAddress, HybridVsockTransport, VirtioSerialTransport, VsockTransport, UnixTransport, TransportError, type Transport } from "../../src/agent/transport";
import { dialWithRetry } from "../../src/agent/dial";
import { hasNative } from "../../src/native";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function sockPath(name: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "tr-"));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return path.join(d, name);
}

async function listen(p: string, onConn: (s: net.Socket) => void): Promise<net.Server> {
  const srv = net.createServer(onConn);
  await new Promise<void>((r) => srv.listen(p, r));
  const conns = new Set<net.Socket>();
  srv.on("connection", (s) => (conns.add(s), s.on("close", () => conns.delete(s))));
  cleanups.push(() => {
    conns.forEach((c) => c.destroy());
    return new Promise((r) => srv.close(r));
  });
  return srv;
}

const codeOf = (p: Promise<unknown>) => p.then(() => "OK", (e: TransportError) => e.code);

describe("agent addresses", () => {
  it("parses each scheme Kata uses into its transport", () => {
    const v = parseAgentAddress("vsock://3:1024") as VsockTransport;
    expect(v).toBeInstanceOf(VsockTransport);
    expect([v.cid, v.port, v.url]).toEqual([3, 1024, "vsock://3:1024"]);
    const h = parseAgentAddress("hvsock:///run/x/agent.sock") as HybridVsockTransport;
    expect([h.udsPath, h.port]).toEqual(["/run/x/agent.sock", 1024]);
    expect((parseAgentAddress("hvsock:///run/x/agent.sock:2000") as HybridVsockTransport).port).toBe(2000);
    const s = parseAgentAddress("virtio-serial:///run/x/agent.sock");
    expect(s).toBeInstanceOf(VirtioSerialTransport);
    expect(s.url).toBe("virtio-serial:///run/x/agent.sock");
    expect(parseAgentAddress("unix:///a")).toBeInstanceOf(UnixTransport);
    expect(parseAgentAddress("mock:///a").url).toBe("mock:///a");
  });

  it("refuses malformed addresses with EINVAL", () => {
    for (const a of ["vsock://3", "vsock://x:1", "vsock://3:", "vsock://-1:5", "hvsock://relative.sock", "virtio-serial://rel", "unix://rel", "ftp:///x", "/just/a/path", ""]) {
      let err: unknown;
      try {
        parseAgentAddress(a);
      } catch (e) {
        err = e;
      }
      expect(err, a).toBeInstanceOf(TransportError);
      expect((err as TransportError).code, a).toBe("EINVAL");
    }
  });

  it("checks vsock CIDs and ports are 32-bit", () => {
    expect(() => new VsockTransport(2 ** 32, 1)).toThrow(/invalid vsock cid/);
    expect(() => new VsockTransport(3, -1)).toThrow(/invalid vsock port/);
    expect(() => new VsockTransport(3, 1.5)).toThrow(/invalid vsock port/);
    expect(() => parseAgentAddress("vsock://3:4294967296")).toThrow(/invalid vsock port/);
    expect(() => new HybridVsockTransport("/x", 2 ** 32)).toThrow(/invalid vsock port/);
  });
});

describe.skipIf(!hasNative())("AF_VSOCK error paths (no vsock peer exists here)", () => {
  it("an attempt to an absent CID fails with an errno code within its bound", async () => {
    const t0 = Date.now();
    const e = await new VsockTransport(0xfffffff0, 1024, 300).connect(new AbortController().signal).catch((x) => x);
    expect(e).toBeInstanceOf(TransportError);
    expect(e.code).toMatch(/^E[A-Z]+$/);
    expect(e.message).toContain("vsock://4294967280:1024");
    expect(Date.now() - t0).toBeLessThan(5000); // bounded by the attempt, not by the kernel's connect timeout
  });

  it("dialling vsock retries until the deadline, then says ETIMEDOUT with the last error", async () => {
    const t0 = Date.now();
    let attempts = 0;
    const e = await dialWithRetry(new VsockTransport(0xfffffff0, 1024, 200), { timeoutMs: 2000, onAttempt: () => attempts++ }).catch((x) => x);
    expect(e.code).toBe("ETIMEDOUT");
    expect(e.message).toMatch(/^dial vsock:\/\/4294967280:1024: no agent within 2000 ms: /);
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(Date.now() - t0).toBeLessThan(8000);
  });

  it("an aborted vsock dial rejects at once with EABORTED", async () => {
    const ac = new AbortController();
    const p = new VsockTransport(0xfffffff0, 1024, 2000).connect(ac.signal);
    ac.abort();
    expect(await codeOf(p)).toBe("EABORTED");
  });
});

describe("dialling with a deadline", () => {
  it("retries a booting agent and returns the first stream that connects", async () => {
    let n = 0;
    const t: Transport = {
      url: "fake://",
      connect: async () => {
        if (++n < 4) throw new TransportError("not yet", "ECONNREFUSED");
        return {} as Duplex;
      },
    };
    const seen: (string | undefined)[] = [];
    await dialWithRetry(t, { timeoutMs: 5000, backoffMs: 1, onAttempt: (_i, e) => seen.push((e as TransportError | undefined)?.code) });
    expect(seen).toEqual(["ECONNREFUSED", "ECONNREFUSED", "ECONNREFUSED", undefined]);
  });

  it("bounds each attempt, so a hung connect does not eat the whole budget", async () => {
    let attempts = 0;
    const hung: Transport = {
      url: "fake://hung",
      connect: (signal) =>
        new Promise((_, reject) => {
          attempts++;
          signal.addEventListener("abort", () => reject(new TransportError("aborted", "EABORTED")));
        }),
    };
    const t0 = Date.now();
    const e = await dialWithRetry(hung, { timeoutMs: 700, attemptTimeoutMs: 150, backoffMs: 1 }).catch((x) => x);
    expect(e.code).toBe("ETIMEDOUT");
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it("stops when its signal aborts (the VM died while we dialled)", async () => {
    const ac = new AbortController();
    const t: Transport = { url: "fake://", connect: async () => Promise.reject(new TransportError("no", "ECONNREFUSED")) };
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    expect(await codeOf(dialWithRetry(t, { timeoutMs: 10_000, signal: ac.signal }))).toBe("EABORTED");
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe("hybrid vsock handshake", () => {
  it("keeps bytes that arrive with the OK line", async () => {
    const p = sockPath("hv.sock");
    await listen(p, (s) => s.once("data", (d) => (expect(d.toString()).toBe("CONNECT 1024\n"), s.write("OK 1073741824\nhello"))));
    const s = await new HybridVsockTransport(p, 1024).connect(new AbortController().signal);
    cleanups.push(() => s.destroy());
    // The stream comes back paused (the handshake stopped it), so nothing is lost before its reader attaches.
    const first = new Promise<Buffer>((r) => s.once("data", r));
    s.resume();
    expect((await first).toString()).toBe("hello");
  });

  it("refused, silent and vanishing peers each fail with their own code", async () => {
    const refuse = sockPath("refuse.sock");
    await listen(refuse, (s) => s.once("data", () => s.write("FAILURE\n")));
    expect(await codeOf(new HybridVsockTransport(refuse, 1024).connect(new AbortController().signal))).toBe("ECONNREFUSED");
    const silent = sockPath("silent.sock");
    await listen(silent, () => {});
    expect(await codeOf(new HybridVsockTransport(silent, 1024, 100).connect(new AbortController().signal))).toBe("ETIMEDOUT");
    const hangup = sockPath("hangup.sock");
    await listen(hangup, (s) => s.once("data", () => s.end()));
    expect(await codeOf(new HybridVsockTransport(hangup, 1024).connect(new AbortController().signal))).toBe("ECONNRESET");
    expect(await codeOf(new HybridVsockTransport(sockPath("absent.sock"), 1024).connect(new AbortController().signal))).toBe("ENOENT");
  });
});

describe("virtio-serial chardev (a unix socket QEMU serves, one stream at a time)", () => {
  it("carries one stream, and a new connection after the first closes", async () => {
    const p = sockPath("agent.sock");
    // Like QEMU's socket chardev: one client at a time, bytes echoed by the "guest".
    let busy = false;
    await listen(p, (s) => {
      if (busy) return void s.destroy();
      busy = true;
      s.on("data", (d) => s.write(`guest:${d}`));
      s.on("close", () => (busy = false));
    });
    const t = new VirtioSerialTransport(p);
    for (let i = 0; i < 3; i++) {
      const s = await dialWithRetry(t, { timeoutMs: 2000 });
      s.write(`ping${i}`);
      const got = await new Promise<Buffer>((r) => s.once("data", r));
      expect(got.toString()).toBe(`guest:ping${i}`);
      await new Promise<void>((r) => (s.once("close", () => r()), s.destroy()));
      await new Promise((r) => setTimeout(r, 20));
    }
  });
});
