// A process's output as the agent serves it: buffered until the shim's
// ReadStdout/ReadStderr asks, an empty answer meaning end of stream.
import type { Readable } from "node:stream";

/** Above this much unread output the source is paused until the shim catches up. */
const HIGH_WATER = 1 << 20;

export class OutputBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private waiters: { len: number; resolve: (b: Buffer) => void }[] = [];
  private source: Readable | null = null;

  get isEnded(): boolean {
    return this.ended && this.size === 0;
  }

  attach(stream: Readable): void {
    // A process that is over before we attach (a quick exec, done before `runc
    // exec` returned) may have had its end of stream already: Node emits 'end'
    // on an empty stream at EOF even with no reader, so no listener would hear
    // it and only the drain timeout would end the output.
    if (stream.readableEnded) {
      this.end();
      return;
    }
    this.source = stream;
    stream.on("data", (c: Buffer) => this.push(c));
    stream.on("end", () => this.end());
    stream.on("close", () => this.end());
    // a pty master answers EIO once the last slave closes: that is its end of stream
    stream.on("error", () => this.end());
    stream.resume(); // it may have been paused while the runtime set it up
  }

  push(chunk: Buffer): void {
    if (this.ended || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > HIGH_WATER) this.source?.pause();
    this.serve();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.serve();
  }

  /** Up to len bytes (any amount when len is 0), waiting for some; empty once ended and drained. */
  read(len: number): Promise<Buffer> {
    return new Promise((resolve) => {
      this.waiters.push({ len, resolve });
      this.serve();
    });
  }

  /** Pending readers get end of stream; used when the process table entry goes away. */
  abort(): void {
    this.chunks = [];
    this.size = 0;
    this.end();
  }

  private serve(): void {
    while (this.waiters.length && (this.size > 0 || this.ended)) {
      const w = this.waiters.shift()!;
      if (this.size === 0) {
        w.resolve(Buffer.alloc(0));
        continue;
      }
      const want = w.len > 0 ? Math.min(w.len, this.size) : this.size;
      w.resolve(this.take(want));
    }
    if (this.size <= HIGH_WATER / 2 && this.source?.isPaused()) this.source.resume();
  }

  private take(n: number): Buffer {
    if (this.chunks[0].length === n) {
      this.size -= n;
      return this.chunks.shift()!;
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
    this.size -= n;
    return out;
  }
}
