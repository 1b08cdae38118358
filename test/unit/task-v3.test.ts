import { describe, it, expect } from "vitest";
import { Task as TaskV2 } from "../../src/gen/containerd.task.v2";
import { Task as TaskV3 } from "../../src/gen/containerd.task.v3";
import type { MessageCodec } from "../../src/ttrpc";

// The daemon serves task v3 with v2's codecs (src/shim/daemon.ts taskV3): that holds only while
// the two packages carry the same messages, field for field.
type Field = { name: string; no: number; type: string; repeated?: boolean; message?: () => MessageCodec<unknown, unknown> };
const shape = (c: MessageCodec<unknown, unknown>, seen = new Set<string>()): unknown => {
  const local = c.typeName.replace(/^containerd\.task\.v[23]\./, "");
  if (seen.has(local)) return local;
  seen.add(local);
  return {
    name: local,
    fields: ((c as unknown as { fields: () => Field[] }).fields() ?? []).map((f) => ({
      name: f.name,
      no: f.no,
      type: f.type.replace(/^containerd\.task\.v[23]\./, ""),
      repeated: !!f.repeated,
      message: f.message ? shape(f.message(), seen) : undefined,
    })),
  };
};

describe("containerd task v3 against v2", () => {
  it("has the same methods, taking and answering the same messages, field for field", () => {
    expect(Object.keys(TaskV3.methods)).toEqual(Object.keys(TaskV2.methods));
    for (const [name, m3] of Object.entries(TaskV3.methods)) {
      const m2 = TaskV2.methods[name as keyof typeof TaskV2.methods];
      expect(shape(m3.requestType as never), `${name} request`).toEqual(shape(m2.requestType as never));
      expect(shape(m3.responseType as never), `${name} response`).toEqual(shape(m2.responseType as never));
    }
  });

  it("a v3 request encoded is read back by v2's codec unchanged", () => {
    const req = { id: "c1", bundle: "/b", rootfs: [{ type: "overlay", source: "o", target: "", options: ["lowerdir=/l"] }], terminal: true, stdin: "/in", stdout: "/out", stderr: "", checkpoint: "", parentCheckpoint: "" };
    const bytes = TaskV3.methods.Create.requestType.encode(req);
    expect(TaskV2.methods.Create.requestType.decode(bytes)).toEqual(TaskV3.methods.Create.requestType.decode(bytes));
  });
});
