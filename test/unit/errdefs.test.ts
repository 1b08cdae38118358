// errdefs' kinds below the wire, status codes only at it: the mapping both
// ways, the ttrpc server turning a handler's kind into its code, and the
// layering that keeps domain code away from status codes.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import * as errdefs from "../../src/errdefs";
import { ErrdefsError, errorOf, kindOf, wrap, type Kind } from "../../src/errdefs";
import { codeOfKind, kindOfCode, toGrpc, toNative } from "../../src/ttrpc/errgrpc";
import { Code, RpcError } from "../../src/ttrpc/status";
import { Server, Client, type ServiceDef } from "../../src/ttrpc";
import { KeyValue } from "../../src/gen/ttrpc";

/** Every kind with its gRPC code, written out here so that a slip in the module's table shows. */
const PAIRS: [Kind, number][] = [
  ["Canceled", 1],
  ["Unknown", 2],
  ["InvalidArgument", 3],
  ["DeadlineExceeded", 4],
  ["NotFound", 5],
  ["AlreadyExists", 6],
  ["PermissionDenied", 7],
  ["ResourceExhausted", 8],
  ["FailedPrecondition", 9],
  ["Aborted", 10],
  ["OutOfRange", 11],
  ["NotImplemented", 12],
  ["Internal", 13],
  ["Unavailable", 14],
  ["DataLoss", 15],
  ["Unauthenticated", 16],
];

describe("errdefs kinds", () => {
  it("has a constructor and a predicate per kind, true for its own kind only", () => {
    const lower = (k: Kind) => k[0].toLowerCase() + k.slice(1);
    const mod = errdefs as unknown as Record<string, (x: unknown, o?: unknown) => unknown>;
    for (const [kind] of PAIRS) {
      const e = mod[lower(kind)]("boom") as ErrdefsError;
      expect(e, kind).toBeInstanceOf(ErrdefsError);
      expect(e.kind).toBe(kind);
      expect(kindOf(e)).toBe(kind);
      for (const [other] of PAIRS) expect(mod[`is${other}`](e), `is${other}(${kind})`).toBe(other === kind);
    }
  });

  it("ends messages in errdefs' class where shimlab's wire always has, once", () => {
    expect(errdefs.notFound("container x").message).toBe("container x: not found");
    expect(errdefs.notFound("container x: not found").message).toBe("container x: not found");
    expect(errdefs.notFound("").message).toBe("not found");
    expect(errdefs.alreadyExists("id e1").message).toBe("id e1: already exists");
    expect(errdefs.invalidArgument("bad").message).toBe("bad: invalid argument");
    expect(errdefs.failedPrecondition("bad").message).toBe("bad: failed precondition");
    expect(errdefs.notImplemented("checkpoint").message).toBe("checkpoint: not implemented");
    expect(errdefs.unavailable("no VM").message).toBe("no VM: unavailable");
    expect(errdefs.deadlineExceeded("boot").message).toBe("boot");
    expect(errdefs.resourceExhausted("full").message).toBe("full");
    expect(errdefs.internal("oops").message).toBe("oops");
  });

  it("says Unknown of a plain error, and no kind's predicate holds for it", () => {
    const plain = new Error("x");
    expect(kindOf(plain)).toBe("Unknown");
    expect(errdefs.isUnknown(plain)).toBe(false);
    expect(errdefs.isNotFound(plain)).toBe(false);
  });

  it("wraps a cause keeping its kind and message, and its cause", () => {
    const inner = errdefs.notFound("process e1");
    const outer = wrap(inner, "kill");
    expect([outer.kind, outer.message, outer.cause]).toEqual(["NotFound", "kill: process e1: not found", inner]);
    const fromPlain = wrap(new Error("EIO"), "read");
    expect([fromPlain.kind, fromPlain.message]).toEqual(["Unknown", "read: EIO"]);
    expect(errdefs.unavailable("x", { cause: inner }).cause).toBe(inner);
  });
});

describe("errgrpc: kinds and status codes", () => {
  it("maps each kind to its code and back", () => {
    expect(PAIRS).toHaveLength(16);
    for (const [kind, code] of PAIRS) {
      expect(codeOfKind(kind), kind).toBe(code);
      expect(kindOfCode(code), String(code)).toBe(kind);
      const wire = toGrpc(errorOf(kind, "m"));
      expect([wire.code, wire.message]).toEqual([code, errorOf(kind, "m").message]);
      const native = toNative(new RpcError(code, `said: ${kind}`)) as ErrdefsError;
      expect(native).toBeInstanceOf(ErrdefsError);
      expect([native.kind, native.message]).toEqual([kind, `said: ${kind}`]);
    }
  });

  it("takes OK and codes gRPC does not define as Unknown", () => {
    for (const code of [0, 17, 99, -1]) {
      expect(kindOfCode(code)).toBe("Unknown");
      expect((toNative(new RpcError(code, "odd")) as ErrdefsError).kind).toBe("Unknown");
    }
  });

  it("keeps the message and the status through ToNative then ToGRPC", () => {
    const status = new RpcError(Code.NotFound, "container c1 not found: not found");
    const native = toNative(status) as ErrdefsError;
    expect(native.cause).toBe(status);
    const back = toGrpc(native);
    expect([back.code, back.message]).toEqual([Code.NotFound, "container c1 not found: not found"]);
  });

  it("leaves what is not an errdefs error as the ttrpc server always answered it", () => {
    const rpc = new RpcError(Code.Aborted, "a");
    expect(toGrpc(rpc)).toBe(rpc);
    expect(toGrpc(new Error("plain")).code).toBe(Code.Unknown);
    expect(toGrpc(Object.assign(new Error("gone"), { code: "ENOENT" })).code).toBe(Code.NotFound);
    const plain = new Error("plain");
    expect(toNative(plain)).toBe(plain);
  });
});

const Echo = { name: "t.Echo", methods: { Echo: { name: "Echo", requestType: KeyValue, responseType: KeyValue } } } as const satisfies ServiceDef;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe("the ttrpc server at the wire", () => {
  it("answers a handler's errdefs error, thrown or rejected, with its kind's code and its message", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "errdefs-"));
    const sock = path.join(dir, "s.sock");
    const server = new Server();
    const seen: unknown[] = [];
    server.use(async (_call, next) => {
      try {
        return await next();
      } catch (e) {
        seen.push(e);
        throw e;
      }
    });
    server.register(Echo, {
      Echo: (r) => {
        if (r.key === "sync") throw errdefs.notFound("container c1");
        if (r.key === "async") return Promise.reject(errdefs.failedPrecondition("paused"));
        if (r.key === "plain") throw new Error("no class");
        return { key: r.key, value: r.value };
      },
    });
    const l = net.createServer();
    server.serve(l);
    await new Promise<void>((r) => l.listen(sock, r));
    const client = await Client.dial(sock);
    cleanups.push(async () => {
      client.close();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const echo = client.service(Echo);
    const answer = (key: string) => echo.Echo({ key, value: "" }).then(() => null, (e: RpcError) => [e.code, e.message]);
    expect(await answer("sync")).toEqual([Code.NotFound, "container c1: not found"]);
    expect(await answer("async")).toEqual([Code.FailedPrecondition, "paused: failed precondition"]);
    expect(await answer("plain")).toEqual([Code.Unknown, "no class"]);
    expect(await echo.Echo({ key: "ok", value: "v" })).toMatchObject({ key: "ok", value: "v" });
    // Interceptors (faults, traces) already see the status the peer gets.
    expect(seen.slice(0, 2).map((e) => e instanceof RpcError)).toEqual([true, true]);
  });
});

describe("layers", () => {
  const SRC = path.join(__dirname, "../../src");
  /** Domain code: it throws and tests errdefs kinds; status codes are the wire's. */
  const DOMAIN = ["pod", "agent", "hypervisor", "oci", "mock-agent", "shim"];
  /** The shim's wire boundary: the gRPC transport maps kinds to codes. */
  const WIRE = new Set(["shim/grpc-server.ts"]);
  const files = (dir: string): string[] =>
    fs.readdirSync(path.join(SRC, dir), { withFileTypes: true }).flatMap((d) => {
      const rel = path.join(dir, d.name);
      if (d.isDirectory()) return files(rel);
      return d.name.endsWith(".ts") ? [rel] : [];
    });

  it("keeps RpcError and ttrpc/status out of pod, agent, hypervisor, OCI, mock-agent and shim domain code", () => {
    const offenders: string[] = [];
    for (const dir of DOMAIN) {
      for (const f of files(dir)) {
        if (WIRE.has(f)) continue;
        const src = fs.readFileSync(path.join(SRC, f), "utf8");
        if (/\bRpcError\b/.test(src)) offenders.push(`${f}: RpcError`);
        if (/from\s+"[^"]*ttrpc\/status"/.test(src)) offenders.push(`${f}: imports ttrpc/status`);
        if (/from\s+"(?:@shimlab\/ttrpc|(?:\.\.\/)+ttrpc)"/.test(src)) offenders.push(`${f}: imports the whole ttrpc`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it("keeps errdefs below everything: it imports nothing", () => {
    expect(fs.readFileSync(path.join(SRC, "errdefs.ts"), "utf8")).not.toMatch(/\bimport\b|\brequire\(/);
  });
});
