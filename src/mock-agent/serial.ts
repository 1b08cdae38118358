// Serving the agent API on a virtio-serial port inside a guest: one byte
// stream, reopened whenever the host side goes away (a read then returns 0).
import fs from "node:fs";
import { Duplex } from "node:stream";
import type { Server } from "../ttrpc/server";
import type { Logger } from "../util/logger";

/** A duplex over a character device, read and written with blocking fs calls on libuv's pool. */
class PortStream extends Duplex {
  private reading = false;

  constructor(private readonly fd: number) {
    super();
  }

  override _read(): void {
    if (this.reading) return;
    this.reading = true;
    const buf = Buffer.allocUnsafe(65536);
    fs.read(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.reading = false;
      if (err || n === 0) {
        this.push(null);
        return;
      }
      if (this.push(buf.subarray(0, n))) this._read();
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const writeAll = (off: number) =>
      fs.write(this.fd, chunk, off, chunk.length - off, null, (err, n) => {
        if (err) return cb(err);
        if (off + n < chunk.length) writeAll(off + n);
        else cb();
      });
    writeAll(0);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    fs.close(this.fd, () => cb(err));
  }
}

export function serveSerial(port: string, server: Server, log: Logger): void {
  const open = () => {
    let fd: number;
    try {
      fd = fs.openSync(port, "r+");
    } catch (e) {
      log.error("cannot open virtio-serial port", { port, error: (e as Error).message });
      setTimeout(open, 200);
      return;
    }
    const s = new PortStream(fd);
    s.on("error", () => s.destroy());
    s.on("end", () => {
      s.destroy();
      // The host disconnected: wait a moment (a closed port reads 0 at once) and serve the next connection.
      setTimeout(open, 50);
    });
    server.handle(s);
    log.info("agent serving on virtio-serial", { port });
  };
  open();
}
