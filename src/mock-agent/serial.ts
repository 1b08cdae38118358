// Serving the agent API on a virtio-serial port inside a guest. The port is
// one byte stream that the host may close and reopen. While no host is
// connected, read(2) on the port returns 0 at once instead of blocking, so a
// connection is only known to start when bytes arrive, and to end when a read
// returns 0 after that. Each such span is handed to the ttrpc server as its
// own stream; replies still in flight from an ended span are dropped, never
// written into the next host connection.
import fs from "node:fs";
import { Duplex } from "node:stream";
import type { Server } from "../ttrpc/server";
import type { Logger } from "../util/logger";

/** Logged once the port is open; the host waits for this line on the guest console. */
export const SERIAL_READY_MSG = "agent serving on virtio-serial";
/** How often to look for a host while none is connected. */
const IDLE_POLL_MS = 20;

class Session extends Duplex {
  ended = false;

  constructor(private readonly writeFn: (b: Buffer, cb: (e?: Error | null) => void) => void) {
    super();
  }

  override _read(): void {
    // data is pushed by the port reader
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.ended) return cb(); // the host that asked is gone
    this.writeFn(chunk, cb);
  }

  finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.push(null);
  }
}

/** The port's two operations, as fs offers them on its file descriptor (a seam for tests). */
export interface PortIo {
  read(buf: Buffer, cb: (err: NodeJS.ErrnoException | null, n: number) => void): void;
  write(buf: Buffer, off: number, cb: (err: NodeJS.ErrnoException | null, n: number) => void): void;
}

export function fdPort(fd: number): PortIo {
  return {
    read: (buf, cb) => fs.read(fd, buf, 0, buf.length, null, cb),
    write: (buf, off, cb) => fs.write(fd, buf, off, buf.length - off, null, cb),
  };
}

export function serveSerial(port: string, server: Server, log: Logger): void {
  let fd: number;
  try {
    fd = fs.openSync(port, "r+");
  } catch (e) {
    log.error("cannot open virtio-serial port", { port, error: (e as Error).message });
    setTimeout(() => serveSerial(port, server, log), 200);
    return;
  }
  servePort(fdPort(fd), server, log);
  log.info(SERIAL_READY_MSG, { port });
}

/** Serves ttrpc on an open port until the process ends. */
export function servePort(io: PortIo, server: Server, log: Logger, idlePollMs = IDLE_POLL_MS): void {
  const write = (chunk: Buffer, cb: (e?: Error | null) => void) => {
    const writeAll = (off: number) =>
      io.write(chunk, off, (err, n) => {
        if (err) return cb(err);
        if (off + n < chunk.length) writeAll(off + n);
        else cb();
      });
    writeAll(0);
  };
  let session: Session | null = null;
  const buf = Buffer.allocUnsafe(65536);
  const readNext = () =>
    io.read(buf, (err, n) => {
      if (err || n === 0) {
        if (session) {
          log.debug("host disconnected from the virtio-serial port");
          session.finish();
          session = null;
        }
        if (err && err.code !== "EAGAIN") log.warn("virtio-serial read failed", { error: err.message });
        setTimeout(readNext, idlePollMs);
        return;
      }
      if (!session) {
        log.debug("host connected to the virtio-serial port");
        const s = new Session(write);
        s.on("error", () => s.finish());
        session = s;
        server.handle(s);
      }
      session.push(Buffer.from(buf.subarray(0, n)));
      readNext();
    });
  readNext();
}
