import { describe, it, expect } from "vitest";
import path from "node:path";
import protobuf from "protobufjs";
import { Writer, Reader, ProtoDecodeError } from "../../src/proto/wire";
import * as events from "../../src/gen/containerd.events";
import * as task from "../../src/gen/containerd.task.v2";
import * as grpc from "../../src/gen/grpc";
import * as cg from "../../src/gen/io.containerd.cgroups.v1";
import { Timestamp } from "../../src/gen/google.protobuf";
import { toPlain } from "../../src/proto/message";

// protobufjs is the independent reference: our generated codecs must agree with it byte for byte.
const root = new protobuf.Root();
root.resolvePath = (_o, t) => (path.isAbsolute(t) ? t : path.join(__dirname, "../../proto", t));
root.loadSync(["containerd/events/task.proto", "containerd/task/v2/shim.proto", "kata/agent.proto", "kata/health.proto", "containerd/cgroups/v1/metrics.proto"], { keepCase: false });

function ref(name: string) {
  return root.lookupType(name);
}

describe("wire format", () => {
  it("encodes varints of every size and signed 64-bit values", () => {
    for (const v of [0, 1, 127, 128, 300, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5, 2 ** 53 - 1]) {
      const w = new Writer(1);
      w.uint64(v);
      expect(new Reader(w.finish()).uint64()).toBe(v);
    }
    for (const v of [-1, -2, -62135596800, -(2 ** 31), -(2 ** 53 - 1), 5, 0]) {
      const w = new Writer(1);
      w.int64(v);
      w.sint64(v);
      const r = new Reader(w.finish());
      expect(r.int64()).toBe(v);
      expect(r.sint64()).toBe(v);
    }
    const w = new Writer();
    w.int32(-5);
    expect(w.finish().length).toBe(10);
    expect(new Reader(w.finish()).int32()).toBe(-5);
  });

  it("moves a forked body when its length needs more than one byte", () => {
    const w = new Writer(4);
    w.uint32(10);
    const at = w.fork();
    w.bytes(Buffer.alloc(20000, 1));
    w.ldelim(at);
    const r = new Reader(w.finish());
    expect(r.uint32()).toBe(10);
    const end = r.delimited();
    expect(end).toBe(w.finish().length);
  });

  it("rejects truncated input with a typed error", () => {
    const full = events.TaskExit.encode({ containerId: "abc", exitedAt: { seconds: 5 } });
    // 0a 03 "abc" | 2a 02 08 05: a cut at byte 5 is a valid shorter message, any other cut is not
    for (let i = 1; i < full.length; i++) {
      if (i === 5) expect(events.TaskExit.decode(full.subarray(0, i)).containerId).toBe("abc");
      else expect(() => events.TaskExit.decode(full.subarray(0, i))).toThrow(ProtoDecodeError);
    }
  });
});

describe("generated codecs agree with protobufjs", () => {
  it("TaskExit with Go's zero time", () => {
    const m = { containerId: "c1", id: "e1", pid: 4242, exitStatus: 137, exitedAt: { seconds: -62135596800, nanos: 0 } };
    const ours = events.TaskExit.encode(m);
    const theirs = ref("containerd.events.TaskExit").encode(m).finish();
    expect(Buffer.from(theirs).toString("hex")).toBe(ours.toString("hex"));
    const back = events.TaskExit.decode(theirs);
    expect(back.exitedAt!.seconds).toBe(-62135596800);
    expect(back.exitStatus).toBe(137);
  });

  it("CreateTaskRequest with mounts and options", () => {
    const m = {
      id: "t1",
      bundle: "/run/b",
      rootfs: [{ type: "overlay", source: "overlay", target: "", options: ["lowerdir=/a:/b", "upperdir=/u", "workdir=/w"] }],
      terminal: true,
      stdin: "/fifo/in",
      stdout: "/fifo/out",
      options: { typeUrl: "runtimeoptions.v1.Options", value: Buffer.from([0x12, 0x03, 0x61, 0x62, 0x63]) },
    };
    const ours = task.CreateTaskRequest.encode(m);
    const pj = ref("containerd.task.v2.CreateTaskRequest");
    const decoded = pj.toObject(pj.decode(ours), { defaults: false }) as Record<string, any>;
    expect(decoded.id).toBe("t1");
    expect(decoded.rootfs[0].options).toEqual(m.rootfs[0].options);
    expect(Buffer.from(decoded.options.value).toString("hex")).toBe("1203616263");
    expect(task.CreateTaskRequest.decode(pj.encode(pj.fromObject(m)).finish()).rootfs[0].type).toBe("overlay");
  });

  it("maps, packed repeats and a oneof in kata's Spec", () => {
    const spec = {
      Version: "1.0.2",
      Process: { Terminal: false, User: { UID: 0, GID: 0, AdditionalGids: [1, 2, 300] }, Args: ["sh", "-c", "echo hi"], Env: ["PATH=/bin"], Cwd: "/", OOMScoreAdj: -998 },
      Root: { Path: "/run/rootfs", Readonly: false },
      Annotations: { "io.kubernetes.cri.container-type": "sandbox", a: "b" },
      Linux: {
        Namespaces: [{ Type: "pid", Path: "" }],
        Seccomp: { DefaultAction: "SCMP_ACT_ERRNO", Syscalls: [{ Names: ["read"], Action: "SCMP_ACT_ALLOW", errnoret: 0 }] },
        Resources: { Memory: { Limit: 2 ** 33 }, CPU: { Quota: -1, Period: 100000 } },
      },
    };
    const ours = grpc.Spec.encode(spec);
    const pj = ref("grpc.Spec");
    const o = pj.toObject(pj.decode(ours), { longs: Number, defaults: false, oneofs: true }) as Record<string, any>;
    expect(o.Process.User.AdditionalGids).toEqual([1, 2, 300]);
    expect(o.Annotations).toEqual(spec.Annotations);
    expect(o.Process.OOMScoreAdj).toBe(-998);
    expect(o.Linux.Resources.Memory.Limit).toBe(2 ** 33);
    expect(o.Linux.Resources.CPU.Quota).toBe(-1);
    expect(o.Linux.Seccomp.Syscalls[0].ErrnoRet).toBe("errnoret"); // present although zero
    const back = grpc.Spec.decode(pj.encode(pj.fromObject(spec)).finish());
    expect(back.Annotations).toEqual(spec.Annotations);
    expect(back.Linux!.Seccomp!.Syscalls[0].errnoret).toBe(0);
    expect(back.Process!.User!.AdditionalGids).toEqual([1, 2, 300]);
  });

  it("a map of messages and uint64s in kata's stats", () => {
    const m = {
      cgroupStats: {
        memoryStats: { cache: 5, stats: { rss: 1234, cache: 2 ** 40 } },
        hugetlbStats: { "2MB": { usage: 1, maxUsage: 2, failcnt: 3 } },
        cpuStats: { cpuUsage: { totalUsage: 99, percpuUsage: [1, 2, 3] } },
      },
    };
    const ours = grpc.StatsContainerResponse.encode(m);
    const pj = ref("grpc.StatsContainerResponse");
    const o = pj.toObject(pj.decode(ours), { longs: Number }) as Record<string, any>;
    expect(o.cgroupStats.memoryStats.stats).toEqual({ rss: 1234, cache: 2 ** 40 });
    expect(o.cgroupStats.hugetlbStats["2MB"].maxUsage).toBe(2);
    expect(o.cgroupStats.cpuStats.cpuUsage.percpuUsage).toEqual([1, 2, 3]);
    expect(grpc.StatsContainerResponse.decode(pj.encode(pj.fromObject(m)).finish())).toEqual(grpc.StatsContainerResponse.decode(ours));
  });

  it("accepts unpacked repeated scalars and skips unknown fields", () => {
    // field 4 per_cpu unpacked (wire type 0) twice, then an unknown field 99
    const w = new Writer();
    w.uint32((4 << 3) | 0);
    w.uint64(7);
    w.uint32((4 << 3) | 0);
    w.uint64(8);
    w.uint32((99 << 3) | 2);
    w.string("ignored");
    w.uint32((1 << 3) | 0);
    w.uint64(3);
    const u = cg.CPUUsage.decode(w.finish());
    expect(u.perCpu).toEqual([7, 8]);
    expect(u.total).toBe(3);
  });

  it("toPlain prints enums by name and drops defaults", () => {
    const s = task.StateResponse.decode(task.StateResponse.encode({ id: "x", status: 2, exitedAt: Timestamp.create({ seconds: 1 }) }));
    expect(toPlain(task.StateResponse, s)).toEqual({ id: "x", status: "RUNNING", exitedAt: { seconds: 1 } });
  });
});
