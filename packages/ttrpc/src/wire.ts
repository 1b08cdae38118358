// Protobuf wire format: the runtime that the generated codecs in src/gen call.
// Hand-written rather than protobufjs's reflection so that the shim loads in a
// few milliseconds and a response is built in one buffer, frame header included.

export const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  StartGroup = 3,
  EndGroup = 4,
  Fixed32 = 5,
}

/** A message that cannot be decoded: truncated, an impossible varint, a bad wire type. */
export class ProtoDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtoDecodeError";
  }
}

const TWO_32 = 4294967296;

export class Writer {
  buf: Buffer;
  pos: number;

  constructor(initial = 128) {
    this.buf = Buffer.allocUnsafe(initial);
    this.pos = 0;
  }

  /** Makes room for n more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Skips n bytes that the caller fills in later (a frame header, say). */
  reserve(n: number): number {
    this.ensure(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  tag(field: number, wt: WireType): void {
    this.uint32((field << 3) | wt);
  }

  uint32(v: number): void {
    this.ensure(5);
    const b = this.buf;
    let p = this.pos;
    v >>>= 0;
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  /** int32 is sign-extended to 64 bits on the wire, as protoc does. */
  int32(v: number): void {
    if (v >= 0) this.uint32(v);
    else this.varint64(v >>> 0, 0xffffffff);
  }

  sint32(v: number): void {
    this.uint32(((v << 1) ^ (v >> 31)) >>> 0);
  }

  /** A 64-bit varint from two 32-bit halves. */
  varint64(lo: number, hi: number): void {
    this.ensure(10);
    const b = this.buf;
    let p = this.pos;
    lo >>>= 0;
    hi >>>= 0;
    while (hi > 0 || lo > 127) {
      b[p++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  /** int64/uint64 held in a JS number (exact up to 2^53, which covers every field shimlab uses). */
  int64(v: number): void {
    if (v >= 0 && v < TWO_32) {
      this.uint32(v);
      return;
    }
    const hi = Math.floor(v / TWO_32);
    const lo = v - hi * TWO_32;
    this.varint64(lo, hi);
  }

  uint64(v: number): void {
    this.int64(v < 0 ? 0 : v);
  }

  sint64(v: number): void {
    // zigzag in two halves
    const neg = v < 0;
    const mag = neg ? -v - 1 : v;
    const hi = Math.floor(mag / TWO_32);
    const lo = mag - hi * TWO_32;
    // (mag << 1) | neg
    const zlo = ((lo << 1) | (neg ? 1 : 0)) >>> 0;
    const zhi = ((hi << 1) | (lo >>> 31)) >>> 0;
    this.varint64(zlo, zhi);
  }

  bool(v: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  fixed32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  sfixed32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v | 0, this.pos);
    this.pos += 4;
  }

  fixed64(v: number): void {
    this.ensure(8);
    const hi = Math.floor(v / TWO_32);
    const lo = v - hi * TWO_32;
    this.buf.writeUInt32LE(lo >>> 0, this.pos);
    this.buf.writeUInt32LE(hi >>> 0, this.pos + 4);
    this.pos += 8;
  }

  sfixed64(v: number): void {
    this.fixed64(v);
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  float(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.pos);
    this.pos += 4;
  }

  string(s: string): void {
    // Worst case 3 bytes per UTF-16 unit; short strings get a one-byte length
    // prefix without measuring them first.
    const max = s.length * 3;
    if (max < 128) {
      this.ensure(1 + max);
      const at = this.pos;
      const n = this.buf.write(s, at + 1);
      this.buf[at] = n;
      this.pos = at + 1 + n;
      return;
    }
    const n = Buffer.byteLength(s);
    this.uint32(n);
    this.ensure(n);
    this.buf.write(s, this.pos, n);
    this.pos += n;
  }

  bytes(v: Uint8Array): void {
    this.uint32(v.length);
    this.ensure(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  /** Starts a length-delimited field whose length is not known yet; pair with ldelim. */
  fork(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Writes the length of the field opened by fork at `at`, moving its body when the length needs more than one byte. */
  ldelim(at: number): void {
    const len = this.pos - at - 1;
    if (len < 128) {
      this.buf[at] = len;
      return;
    }
    let n = 1;
    for (let v = len >>> 7; v > 0; v >>>= 7) n++;
    this.ensure(n - 1);
    this.buf.copyWithin(at + n, at + 1, this.pos);
    let p = at;
    let v = len;
    while (v > 127) {
      this.buf[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    this.buf[p] = v;
    this.pos += n - 1;
  }

  /** The bytes written so far, sharing this writer's memory. */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export class Reader {
  readonly buf: Buffer;
  pos: number;
  end: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = pos;
    this.end = end;
  }

  private truncated(): never {
    throw new ProtoDecodeError(`truncated message at byte ${this.pos}`);
  }

  uint32(): number {
    const b = this.buf;
    let p = this.pos;
    let result = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) this.truncated();
      const byte = b[p++];
      if (shift < 28) result |= (byte & 127) << shift;
      else if (shift === 28) result |= (byte & 15) << 28;
      if (byte < 128) break;
      shift += 7;
      if (shift >= 70) throw new ProtoDecodeError("varint longer than 10 bytes");
    }
    this.pos = p;
    return result >>> 0;
  }

  int32(): number {
    return this.uint32() | 0;
  }

  sint32(): number {
    const v = this.uint32();
    return (v >>> 1) ^ -(v & 1);
  }

  /** Reads a 64-bit varint into [lo, hi]. */
  private varint64(): [number, number] {
    const b = this.buf;
    let p = this.pos;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) this.truncated();
      const byte = b[p++];
      const bits = byte & 127;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 15) << 28;
        hi |= bits >>> 4;
      } else if (shift < 64) hi |= bits << (shift - 32);
      if (byte < 128) break;
      shift += 7;
      if (shift >= 70) throw new ProtoDecodeError("varint longer than 10 bytes");
    }
    this.pos = p;
    return [lo >>> 0, hi >>> 0];
  }

  uint64(): number {
    const [lo, hi] = this.varint64();
    return hi * TWO_32 + lo;
  }

  int64(): number {
    const [lo, hi] = this.varint64();
    return (hi | 0) * TWO_32 + lo;
  }

  sint64(): number {
    const [lo, hi] = this.varint64();
    // unzigzag
    const neg = lo & 1;
    const mlo = ((lo >>> 1) | (hi << 31)) >>> 0;
    const mhi = hi >>> 1;
    const mag = mhi * TWO_32 + mlo;
    return neg ? -mag - 1 : mag;
  }

  bool(): boolean {
    return this.uint64() !== 0;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) this.truncated();
  }

  fixed32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  sfixed32(): number {
    this.need(4);
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  fixed64(): number {
    this.need(8);
    const lo = this.buf.readUInt32LE(this.pos);
    const hi = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  sfixed64(): number {
    this.need(8);
    const lo = this.buf.readUInt32LE(this.pos);
    const hi = this.buf.readInt32LE(this.pos + 4);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  double(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  float(): number {
    this.need(4);
    const v = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return v;
  }

  /** The end offset of a length-delimited field whose length prefix comes next. */
  delimited(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) this.truncated();
    return end;
  }

  string(): string {
    const end = this.delimited();
    const s = this.buf.toString("utf8", this.pos, end);
    this.pos = end;
    return s;
  }

  /** Bytes, sharing the input's memory (no copy). */
  bytes(): Buffer {
    const end = this.delimited();
    const v = this.buf.subarray(this.pos, end);
    this.pos = end;
    return v;
  }

  skip(wt: number, field = 0, depth = 0): void {
    switch (wt) {
      case WireType.Varint:
        this.varint64();
        return;
      case WireType.Fixed64:
        this.need(8);
        this.pos += 8;
        return;
      case WireType.LengthDelimited:
        this.pos = this.delimited();
        return;
      case WireType.Fixed32:
        this.need(4);
        this.pos += 4;
        return;
      case WireType.StartGroup: {
        // Groups are long deprecated but legal: skip to the matching end tag,
        // nesting no deeper than protobuf's own recursion limit.
        if (depth >= 100) throw new ProtoDecodeError("groups nested too deeply");
        for (;;) {
          if (this.pos >= this.end) this.truncated();
          const tag = this.uint32();
          const w = tag & 7;
          if (w === WireType.EndGroup) {
            if (tag >>> 3 !== field) throw new ProtoDecodeError("mismatched end group");
            return;
          }
          this.skip(w, tag >>> 3, depth + 1);
        }
      }
      case WireType.EndGroup:
        throw new ProtoDecodeError(`unexpected end group at byte ${this.pos}`);
      default:
        throw new ProtoDecodeError(`invalid wire type ${wt} at byte ${this.pos}`);
    }
  }
}

/** Reads a tag and rejects field number 0, which no message may use. */
export function readTag(r: Reader): number {
  const tag = r.uint32();
  if (tag >>> 3 === 0) throw new ProtoDecodeError(`invalid field number 0 at byte ${r.pos}`);
  return tag;
}

export interface Codec<T, I = Partial<T>> {
  readonly typeName: string;
  create(init?: I): T;
  write(m: I, w: Writer): void;
  read(r: Reader, end: number): T;
  encode(m: I): Buffer;
  decode(b: Uint8Array): T;
}
