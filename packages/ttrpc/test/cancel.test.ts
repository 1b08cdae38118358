// A call's ctx.signal is made only when a handler asks for it (src/server.ts):
// whenever it is asked for, it says the truth about the call.
import { describe, it, expect, afterEach } from "vitest";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import { Server, Client, type ServiceDef, type CallContext } from "../src";
import { KeyValue } from "../src/gen/ttrpc";

const Svc = {
  name: "test.Cancel",
  methods: {
    Early: { name: "Early", requestType: KeyValue, responseType: KeyValue },
    Late: { name: "Late", requestType: KeyValue, responseType: KeyValue },
  },
} as const satisfies ServiceDef;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function serve(impl: { Early: (r: KeyValue, ctx: CallContext) => Promise<object>; Late: (r: KeyValue, ctx: CallContext) => Promise<object> }): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ttrpc-cancel-"));
  const sock = path.join(dir, "s.sock");
  const server = new Server();
  server.register(Svc, impl as never);
  const l = net.createServer();
  server.serve(l);
  await new Promise<void>((r) => l.listen(sock, r));
  cleanups.push(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return sock;
}

describe("ttrpc call cancellation", () => {
  it("aborts a signal taken early, and hands an aborted one to a handler that asks after the fact", async () => {
    const seen: Record<string, { aborted: boolean; reason: string }> = {};
    let lateDone!: () => void;
    const lateFinished = new Promise<void>((r) => (lateDone = r));
    const sock = await serve({
      Early: (req, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener("abort", () => {
            seen.early = { aborted: true, reason: String((ctx.signal.reason as Error).message) };
            resolve({});
          });
        }),
      Late: (req, ctx) =>
        new Promise((resolve) => {
          // looks at the signal only once the connection is long gone
          setTimeout(() => {
            seen.late = { aborted: ctx.signal.aborted, reason: String((ctx.signal.reason as Error)?.message) };
            lateDone();
            resolve({});
          }, 150);
        }),
    });
    const c = await Client.dial(sock);
    const svc = c.service(Svc);
    const a = svc.Early({ key: "e" }).catch(() => {});
    const b = svc.Late({ key: "l" }).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    c.close();
    await Promise.all([a, b, lateFinished]);
    expect(seen.early).toEqual({ aborted: true, reason: "ttrpc: connection closed" });
    expect(seen.late).toEqual({ aborted: true, reason: "ttrpc: connection closed" });
  });

  it("leaves the signal of a finished call alone", async () => {
    let ctxOf: CallContext | null = null;
    const sock = await serve({
      Early: async (_req, ctx) => {
        ctxOf = ctx;
        return { key: "ok" };
      },
      Late: async () => ({}),
    });
    const c = await Client.dial(sock);
    cleanups.push(() => c.close());
    expect((await c.service(Svc).Early({ key: "x" })).key).toBe("ok");
    c.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(ctxOf!.signal.aborted).toBe(false);
    expect(ctxOf!.method).toBe("test.Cancel/Early");
  });
});
