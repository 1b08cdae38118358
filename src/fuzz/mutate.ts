// Mutations of a byte string, in the manner of libFuzzer's: flips, interesting
// bytes, insertions, deletions, truncation, splicing, varint tampering.
import type { Rng } from "./random";

const SPECIAL = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x0a, 0x12, 0x1a, 0x22];

export function mutate(input: Buffer, r: Rng, other?: Buffer): Buffer {
  let b = Buffer.from(input);
  const rounds = 1 + r.int(4);
  for (let i = 0; i < rounds; i++) {
    const op = r.int(9);
    const at = b.length ? r.int(b.length) : 0;
    switch (op) {
      case 0: // flip a bit
        if (b.length) b[at] ^= 1 << r.int(8);
        break;
      case 1: // an interesting byte
        if (b.length) b[at] = r.pick(SPECIAL);
        break;
      case 2: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), r.bytes(1 + r.int(8)), b.subarray(at)]);
        break;
      case 3: // delete a run
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(8)))]);
        break;
      case 4: // truncate
        b = b.subarray(0, at);
        break;
      case 5: // splice with another input
        if (other && other.length) b = Buffer.concat([b.subarray(0, at), other.subarray(r.int(other.length))]);
        break;
      case 6: // a long varint: continuation bits all the way
        b = Buffer.concat([b.subarray(0, at), Buffer.alloc(1 + r.int(12), 0xff), b.subarray(at)]);
        break;
      case 7: // a huge length prefix
        b = Buffer.concat([b.subarray(0, at), Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), b.subarray(at)]);
        break;
      case 8: // duplicate a chunk
        b = Buffer.concat([b, b.subarray(at, at + r.int(32))]);
        break;
    }
  }
  return b;
}
