// The ttrpc frame layer: a 10-byte header and a body, nothing about services.
//
//   offset 0  uint32 BE  body length (at most 4 MiB, so the first byte is 0)
//   offset 4  uint32 BE  stream id (odd when the client opened the stream)
//   offset 8  uint8      message type
//   offset 9  uint8      flags

export const HEADER_LENGTH = 10;
export const MESSAGE_LENGTH_MAX = 4 << 20;

export const MessageType = {
  Request: 0x1,
  Response: 0x2,
  Data: 0x3,
} as const;

export const Flags = {
  RemoteClosed: 0x1,
  RemoteOpen: 0x2,
  NoData: 0x4,
} as const;

export interface FrameHeader {
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

export function writeHeader(buf: Buffer, at: number, h: FrameHeader): void {
  buf.writeUInt32BE(h.length, at);
  buf.writeUInt32BE(h.streamId >>> 0, at + 4);
  buf[at + 8] = h.type;
  buf[at + 9] = h.flags;
}

export function encodeFrame(streamId: number, type: number, flags: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LENGTH + body.length);
  writeHeader(out, 0, { length: body.length, streamId, type, flags });
  out.set(body, HEADER_LENGTH);
  return out;
}

/** What the frame reader hands up. */
export type FrameEvent =
  | { kind: "frame"; header: FrameHeader; body: Buffer }
  /** A body longer than the limit, skipped whole: the stream it belongs to gets ResourceExhausted. */
  | { kind: "oversize"; header: FrameHeader }
  /** Bytes that cannot be a ttrpc frame: the connection is no longer in sync and must close. */
  | { kind: "malformed"; reason: string };

/**
 * Splits a byte stream into frames. Feed it chunks as they arrive; a body that
 * lies inside one chunk is handed up as a view of it, without a copy.
 *
 * A header whose reserved first byte is not zero announces a body of 16 MiB or
 * more, which no ttrpc peer sends: it is taken as garbage rather than as an
 * oversized message, so a stray writer cannot make the reader swallow gigabytes.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | null = null;
  private discard = 0;
  private broken = false;

  constructor(private readonly maxLength = MESSAGE_LENGTH_MAX) {}

  /** Bytes held that do not yet form a whole frame (a truncated frame at close). */
  get pending(): number {
    return this.buffered + (this.header ? HEADER_LENGTH : 0);
  }

  push(chunk: Buffer, emit: (e: FrameEvent) => void): void {
    if (this.broken || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.discard > 0) {
        const n = Math.min(this.discard, this.buffered);
        this.consume(n);
        this.discard -= n;
        if (this.discard > 0) return;
        continue;
      }
      if (!this.header) {
        if (this.buffered < HEADER_LENGTH) return;
        const h = this.take(HEADER_LENGTH);
        const header: FrameHeader = {
          length: h.readUInt32BE(0),
          streamId: h.readUInt32BE(4),
          type: h[8],
          flags: h[9],
        };
        if (h[0] !== 0) {
          this.broken = true;
          this.chunks = [];
          this.buffered = 0;
          emit({ kind: "malformed", reason: `invalid frame header ${h.toString("hex")}: reserved length byte is not zero` });
          return;
        }
        if (header.length > this.maxLength) {
          this.discard = header.length;
          emit({ kind: "oversize", header });
          continue;
        }
        this.header = header;
      }
      if (this.buffered < this.header.length) return;
      const header = this.header;
      this.header = null;
      const body = this.take(header.length);
      emit({ kind: "frame", header, body });
      if (this.broken) return;
    }
  }

  /** Removes and returns n bytes from the front; a view when they lie in one chunk. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  private consume(n: number): void {
    while (n > 0) {
      const c = this.chunks[0];
      if (c.length <= n) {
        n -= c.length;
        this.buffered -= c.length;
        this.chunks.shift();
      } else {
        this.chunks[0] = c.subarray(n);
        this.buffered -= n;
        n = 0;
      }
    }
  }
}
