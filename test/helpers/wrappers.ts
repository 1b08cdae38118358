// google.protobuf.StringValue and Int64Value, written by hand: only the tests
// that call Go's echo-server (test/interop) need them, so the generated
// codecs in src/gen stay what the shim needs.
import { Reader, Writer, readTag } from "../../src/proto/wire";
import type { MessageCodec } from "../../src/proto/message";

function wrapper<V>(typeName: string, type: string, zero: V, put: (w: Writer, v: V) => void, get: (r: Reader) => V, wireType: number): MessageCodec<{ value: V }, { value?: V }> {
  return {
    typeName,
    fields: () => [{ name: "value", no: 1, type }],
    create: (init) => ({ value: init?.value ?? zero }),
    write(m, w) {
      if (m.value === undefined || m.value === zero) return;
      w.uint32((1 << 3) | wireType);
      put(w, m.value);
    },
    read(r, end) {
      const m = { value: zero };
      while (r.pos < end) {
        const tag = readTag(r);
        if (tag === ((1 << 3) | wireType)) m.value = get(r);
        else r.skip(tag & 7, tag >>> 3);
      }
      return m;
    },
    encode(m) {
      const w = new Writer();
      this.write(m, w);
      return w.finish();
    },
    decode(b) {
      const r = new Reader(b);
      return this.read(r, r.end);
    },
  };
}

export const StringValue = wrapper("google.protobuf.StringValue", "string", "", (w, v) => w.string(v), (r) => r.string(), 2);
export const Int64Value = wrapper("google.protobuf.Int64Value", "int64", 0, (w, v) => w.int64(v), (r) => r.int64(), 0);
