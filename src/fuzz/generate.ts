// Random but well-formed messages, built from the codecs' own field tables,
// as seeds for mutation.
import type { FieldInfo, MessageCodec } from "../proto/message";
import type { Rng } from "./random";

const INTERESTING = [0, 1, -1, 127, 128, 255, 256, 16383, 16384, 2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -62135596800];

function scalar(type: string, r: Rng): unknown {
  switch (type) {
    case "string":
      return r.chance(0.2) ? "" : r.pick(["id", "ctr-1", "/run/x", "é∂", "\u0000", "a".repeat(r.int(300))]) + r.int(1000);
    case "bytes":
      return r.bytes(r.int(64));
    case "bool":
      return r.chance(0.5);
    case "enum":
      return r.int(6);
    case "uint32":
    case "fixed32":
      return r.chance(0.3) ? r.pick([0, 1, 255, 2 ** 32 - 1]) : r.int(2 ** 32);
    case "int32":
    case "sint32":
    case "sfixed32":
      return r.chance(0.3) ? r.pick([0, -1, 2 ** 31 - 1, -(2 ** 31)]) : r.int(2 ** 31) - 2 ** 30;
    case "double":
    case "float":
      return r.next() * 1000;
    default:
      // 64-bit kinds
      return type.startsWith("u") || type === "fixed64" ? Math.abs(r.pick(INTERESTING)) : r.pick(INTERESTING);
  }
}

export function randomMessage(codec: MessageCodec<unknown, unknown>, r: Rng, depth = 0): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  for (const f of codec.fields() as FieldInfo[]) {
    if (r.chance(0.35)) continue;
    if (f.message) {
      if (depth > 4) continue;
      const sub = f.message();
      m[f.name] = f.repeated ? Array.from({ length: r.int(3) }, () => randomMessage(sub, r, depth + 1)) : randomMessage(sub, r, depth + 1);
    } else if (f.map) {
      // map<string, scalar> only; message-valued maps are left empty here
      if (!["string", "uint64", "int64", "uint32", "int32", "bool"].includes(f.type)) continue;
      const obj: Record<string, unknown> = {};
      for (let i = r.int(3); i > 0; i--) obj[`k${r.int(100)}`] = f.type === "string" ? String(scalar("string", r)) : f.type === "bool" ? r.chance(0.5) : r.int(100000);
      m[f.name] = obj;
    } else if (f.repeated) {
      m[f.name] = Array.from({ length: r.int(4) }, () => scalar(f.type, r));
    } else {
      m[f.name] = scalar(f.type, r);
    }
  }
  return m;
}
