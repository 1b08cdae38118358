// What every generated message codec offers, and the few helpers they share.
import { Reader, Writer } from "./wire";

export interface FieldInfo {
  name: string;
  no: number;
  type: string;
  repeated?: boolean;
  map?: boolean;
  message?: () => MessageCodec<unknown, unknown>;
  enumNames?: Record<number, string>;
}

export interface MessageCodec<T, I = Partial<T>> {
  /** Fully qualified proto name; also the bare Any type URL containerd uses. */
  readonly typeName: string;
  /** Field metadata, for generic printing and fuzzing. */
  fields(): FieldInfo[];
  create(init?: I): T;
  write(m: I, w: Writer): void;
  read(r: Reader, end: number): T;
  encode(m: I): Buffer;
  decode(b: Uint8Array): T;
}

/** Per-call context handed to a service handler. */
export interface CallContext {
  /** ttrpc metadata, keys lower-cased; several values per key are kept in order. */
  readonly metadata: ReadonlyMap<string, string[]>;
  /** Aborted when the caller's timeout_nano passes or its connection closes. */
  readonly signal: AbortSignal;
  /** Absolute deadline in ms (Date.now() scale), or undefined for none. */
  readonly deadline?: number;
  /** "service/method", for logs and traces. */
  readonly method: string;
  readonly streamId: number;
}

export const EMPTY_BYTES: Buffer = Buffer.alloc(0);

/** Reads a length-delimited sub-message, bounding the reader to its length. */
export function readNested<T>(r: Reader, codec: MessageCodec<T, unknown>): T {
  const end = r.delimited();
  const saved = r.end;
  r.end = end;
  try {
    return codec.read(r, end);
  } finally {
    r.end = saved;
  }
}

/** Encodes a message as a google.protobuf.Any with a bare type URL. */
export function toAny<I>(codec: MessageCodec<unknown, I>, m: I): { typeUrl: string; value: Buffer } {
  return { typeUrl: codec.typeName, value: codec.encode(m) };
}

/** A plain-object view of a decoded message, for logs, traces and JSON output. */
export function toPlain(codec: MessageCodec<unknown, unknown>, m: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const obj = m as Record<string, unknown>;
  for (const f of codec.fields()) {
    const v = obj[f.name];
    if (v === undefined || v === null) continue;
    if (f.message) {
      const sub = f.message();
      if (f.repeated) {
        const arr = v as unknown[];
        if (arr.length) out[f.name] = arr.map((x) => toPlain(sub, x));
      } else out[f.name] = toPlain(sub, v);
    } else if (f.map) {
      if (Object.keys(v as object).length) out[f.name] = v;
    } else if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
      if ((v as Uint8Array).length) out[f.name] = Buffer.from(v as Uint8Array).toString("base64");
    } else if (Array.isArray(v)) {
      if (v.length) out[f.name] = v;
    } else if (v !== "" && v !== 0 && v !== false) {
      out[f.name] = f.enumNames ? (f.enumNames[v as number] ?? v) : v;
    }
  }
  return out;
}
