// containerd 2.x's start contract, byte level: what may arrive on stdin and
// what shimlab answers, read back as containerd 2.3's parseStartResponse does.
import { describe, it, expect } from "vitest";
import { BootstrapParams, BootstrapResult } from "../../src/gen/containerd.runtime.bootstrap.v1";
import { Any } from "../../src/gen/google.protobuf";
import { Options } from "../../src/gen/runtimeoptions.v1";
import { answerFor, formatResult, parseStartInput, parseStartResponse, protocolFrom } from "../../src/shim/bootstrap";

const ADDR = "unix:///run/containerd/s/" + "ab".repeat(32);

describe("BootstrapParams on start's stdin", () => {
  it("reads protobuf params when id and namespace match the command line", () => {
    const buf = BootstrapParams.encode({ instanceId: "c1", namespace: "k8s.io", logLevel: -4, containerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc", socketDir: "/run/s" });
    const r = parseStartInput(buf, "c1", "k8s.io");
    expect(r.encoding).toBe("binary");
    expect(r.params?.logLevel).toBe(-4);
    expect(r.params?.socketDir).toBe("/run/s");
    // Other id: not ours (containerd's shim library treats it as the old options Any).
    expect(parseStartInput(buf, "c2", "k8s.io").params).toBeNull();
  });

  it("reads the runtime options Any older containerd sends as no params", () => {
    const legacy = Any.encode({ typeUrl: "runtimeoptions.v1.Options", value: Options.encode({ configPath: "/etc/shimlab.toml" }) });
    // The Any decodes as BootstrapParams (type_url lands in instance_id), which the identity check rejects.
    expect(BootstrapParams.decode(legacy).instanceId).toBe("runtimeoptions.v1.Options");
    expect(parseStartInput(legacy, "c1", "default")).toEqual({ params: null, encoding: null });
    expect(parseStartInput(Buffer.alloc(0), "c1", "default")).toEqual({ params: null, encoding: null });
    expect(parseStartInput(Buffer.from([0xff, 0xff, 0xff]), "c1", "default").params).toBeNull();
  });

  it("reads JSON params in protojson (camelCase) and proto (snake_case) names, and refuses bad ones clearly", () => {
    const camel = parseStartInput(Buffer.from(JSON.stringify({ instanceId: "c1", namespace: "ns", logLevel: "LOG_LEVEL_DEBUG", socketDir: "/s" })), "c1", "ns");
    expect([camel.encoding, camel.params?.logLevel, camel.params?.socketDir]).toEqual(["json", -4, "/s"]);
    const snake = parseStartInput(Buffer.from(` {"instance_id":"c1","namespace":"ns","containerd_ttrpc_address":"/t"}`), "c1", "ns");
    expect(snake.params?.containerdTtrpcAddress).toBe("/t");
    expect(() => parseStartInput(Buffer.from('{"instance_id":"x","namespace":"ns"}'), "c1", "ns")).toThrow(/do not match the command line/);
    expect(() => parseStartInput(Buffer.from("{nope"), "c1", "ns")).toThrow(/not valid JSON/);
    expect(() => parseStartInput(Buffer.from('{"instance_id":"c1","namespace":"ns","log_level":"LOUD"}'), "c1", "ns")).toThrow(/log_level/);
    expect(() => parseStartInput(Buffer.from('{"instance_id":7}'), "c1", "ns")).toThrow(/instance_id must be a string/);
  });

  it("refuses more than containerd's 10 MiB limit", () => {
    expect(() => parseStartInput(Buffer.alloc((10 << 20) + 1), "c1", "ns")).toThrow(/limit/);
  });
});

describe("start's answer", () => {
  it("is the plain address for 1.6-style callers, and v3 results for 2.x in the encoding they used", () => {
    const none = { params: null, encoding: null };
    expect(formatResult(ADDR, answerFor(none, null)).toString()).toBe(ADDR);
    const c2 = { MAX_SHIM_VERSION: "2" }; // what 1.7 and 2.x put in a shim's environment
    // containerd 2.x dials a gRPC shim's address as a bare socket path.
    expect(JSON.parse(formatResult(ADDR, answerFor(none, "grpc", c2)).toString())).toEqual({ version: 3, address: ADDR.slice("unix://".length), protocol: "grpc" });
    // containerd 1.6 (no MAX_SHIM_VERSION) can only read a plain address and speak ttrpc.
    expect(answerFor(none, "grpc", {})).toEqual({ encoding: "plain", protocol: "ttrpc" });
    const bin = formatResult(ADDR, answerFor({ params: BootstrapParams.create(), encoding: "binary" }, null));
    expect(BootstrapResult.decode(bin)).toMatchObject({ version: 3, address: ADDR, protocol: "ttrpc" });
  });

  it("parses back as containerd 2.3 does: protobuf, then JSON, then a plain ttrpc v2 address", () => {
    for (const [enc, proto] of [["binary", "grpc"], ["json", "ttrpc"]] as const) {
      const out = formatResult(ADDR, { encoding: enc, protocol: proto });
      expect(parseStartResponse(out)).toEqual({ version: 3, address: proto === "grpc" ? ADDR.slice("unix://".length) : ADDR, protocol: proto });
    }
    expect(parseStartResponse(Buffer.from(ADDR + "\n"))).toEqual({ version: 2, address: ADDR, protocol: "ttrpc" });
    expect(parseStartResponse(Buffer.from('{"version":2,"address":"unix:///x","protocol":"ttrpc"}'))).toEqual({ version: 2, address: "unix:///x", protocol: "ttrpc" });
    expect(() => parseStartResponse(Buffer.from('{"version":4,"address":"unix:///x"}'))).toThrow(/unsupported shim version \(4\)/);
  });

  it("takes the protocol from SHIMLAB_SHIM_PROTOCOL and nothing else", () => {
    expect(protocolFrom({})).toBeNull();
    expect(protocolFrom({ SHIMLAB_SHIM_PROTOCOL: "grpc" })).toBe("grpc");
    expect(() => protocolFrom({ SHIMLAB_SHIM_PROTOCOL: "http" })).toThrow(/want "ttrpc" or "grpc"/);
  });
});
