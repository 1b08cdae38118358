// A fast, seeded fuzz run in the suite: any crash or hang in a decoder fails it.
import { describe, it, expect } from "vitest";
import { fuzz, allTargets } from "../../src/fuzz/fuzzer";
import { ProtoDecodeError } from "../../src/proto/wire";

describe("fuzzing the decoders (seeded)", () => {
  it("covers the frame reader and every request/response of Task, AgentService, Health and Events", () => {
    const names = allTargets().map((t) => t.name);
    for (const n of ["ttrpc.FrameReader", "ttrpc.Request", "containerd.task.v2.CreateTaskRequest", "grpc.CreateContainerRequest", "grpc.ReadStreamResponse", "grpc.HealthCheckResponse", "containerd.services.events.ttrpc.v1.ForwardRequest", "containerd.events.TaskExit"]) {
      expect(names).toContain(n);
    }
    expect(names.length).toBeGreaterThanOrEqual(100);
  });

  it("finds no crash or hang in 60,000 inputs", () => {
    const r = fuzz({ iterations: 60_000, seed: 20261124 });
    expect(r.findings).toEqual([]);
  });

  it("would report a crash: a decoder that throws a TypeError is caught", () => {
    const r = fuzz({
      iterations: 200,
      seed: 1,
      targets: [
        {
          name: "broken",
          seed: () => Buffer.from([1, 2, 3]),
          run: (b) => {
            if (b.length > 2) throw new TypeError("boom");
            throw new ProtoDecodeError("fine");
          },
        },
      ],
    });
    expect(r.findings.some((f) => f.kind === "crash" && f.error.includes("boom"))).toBe(true);
  });
});
