// A connection dialled ahead for an agent up before Create (src/agent/transport/predialed.ts).
import { describe, it, expect } from "vitest";
import { PassThrough, type Duplex } from "node:stream";
import { PreDialedTransport } from "../../src/agent/transport/predialed";
import type { Transport } from "../../src/agent/transport";

/** A transport whose dials succeed or fail as told, in order, counting them. */
function fake(outcomes: ("ok" | "fail")[]): Transport & { dials: number; made: PassThrough[] } {
  const t = {
    url: "fake://agent",
    dials: 0,
    made: [] as PassThrough[],
    connect(_signal: AbortSignal): Promise<Duplex> {
      const o = outcomes[t.dials++] ?? "ok";
      if (o === "fail") return Promise.reject(new Error("not listening yet"));
      const s = new PassThrough();
      t.made.push(s);
      return Promise.resolve(s);
    },
  };
  return t;
}

describe("a transport dialled ahead", () => {
  it("dials at once; the first connect takes that connection, a later one dials anew", async () => {
    const inner = fake(["ok", "ok"]);
    const t = new PreDialedTransport(inner);
    expect(inner.dials).toBe(1);
    expect(t.url).toBe("fake://agent");
    const first = await t.connect(new AbortController().signal);
    expect(first).toBe(inner.made[0]);
    expect(inner.dials).toBe(1);
    const second = await t.connect(new AbortController().signal);
    expect(second).toBe(inner.made[1]);
    expect(inner.dials).toBe(2);
  });

  it("a connection made already (a parked daemon's) is the first connect's, and nothing is dialled for it", async () => {
    const inner = fake(["ok"]);
    const made = new PassThrough();
    const t = new PreDialedTransport(inner, made);
    expect(inner.dials).toBe(0);
    expect(await t.connect(new AbortController().signal)).toBe(made);
    expect(await t.connect(new AbortController().signal)).toBe(inner.made[0]);
    expect(inner.dials).toBe(1);
  });

  it("an early dial that failed is no answer: the connect dials now", async () => {
    const inner = fake(["fail", "ok"]);
    const t = new PreDialedTransport(inner);
    const s = await t.connect(new AbortController().signal);
    expect(s).toBe(inner.made[0]);
    expect(inner.dials).toBe(2);
  });

  it("close destroys a connection nobody took", async () => {
    const inner = fake(["ok"]);
    const t = new PreDialedTransport(inner);
    t.close();
    await new Promise((r) => setImmediate(r));
    expect(inner.made[0].destroyed).toBe(true);
    // and the next connect dials again rather than take it
    const s = await t.connect(new AbortController().signal);
    expect(s).not.toBe(inner.made[0]);
  });

  it("an aborted connect destroys the connection it would have taken", async () => {
    const inner = fake(["ok"]);
    const t = new PreDialedTransport(inner);
    const ac = new AbortController();
    ac.abort();
    await expect(t.connect(ac.signal)).rejects.toThrow(/aborted/);
    await new Promise((r) => setImmediate(r));
    expect(inner.made[0].destroyed).toBe(true);
  });
});
