// The agent's output buffer for a process: end of stream must reach the
// shim even when the stream ended before the buffer was attached.
import { describe, it, expect } from "vitest";
import { PassThrough, Readable } from "node:stream";
import { OutputBuffer } from "../../src/mock-agent/output";

describe("mock agent OutputBuffer", () => {
  it("ends at once for a stream whose end came before attach (a quick exec)", async () => {
    const s = new Readable({ read() {} });
    s.push(null);
    s.resume();
    await new Promise((r) => s.once("end", r)); // Node emits 'end' with no reader attached
    const b = new OutputBuffer();
    b.attach(s);
    expect((await b.read(0)).length).toBe(0);
    expect(b.isEnded).toBe(true);
  });

  it("serves what was written, then end of stream", async () => {
    const s = new PassThrough();
    const b = new OutputBuffer();
    s.write("abc");
    s.end("def");
    b.attach(s);
    const got: string[] = [];
    for (;;) {
      const d = await b.read(4);
      if (!d.length) break;
      got.push(d.toString());
    }
    expect(got.join("")).toBe("abcdef");
  });
});
