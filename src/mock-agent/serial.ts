// Serving the agent API on a virtio-serial port inside a guest. The port is
// one byte stream that the host may close and reopen. While no host is
// connected, read(2) on the port returns 0 at once instead of blocking, so a
// connection is only known to start when bytes arrive, and to end when a read
// returns 0 after that. Each such span is handed to the ttrpc server as its
// own stream; replies still in flight from an ended span are dropped, never
// written into the next host connection.
//
// Waiting for a host: the kernel sends SIGIO to the port's owner when the host
// side opens (virtio_console's port-open message) if the port has O_ASYNC, so
// the agent reads again on that signal. Reading every 20 ms instead kept an idle
// TCG guest's vCPU 10-11 % of a host CPU busy (13.5 % against 2.6-3.2 % with a
// 1 s poll, bench/CHANGELOG.md): each warm VM in a factory's pool paid it all
// the time, on the CPU its pods then shared. A slow poll stays, in case a signal
// never comes; without the native addon, the fast poll.
import fs from "node:fs";
import { Duplex } from "node:stream";
import type { Server } from "../ttrpc/server";
import type { Logger } from "../util/logger";
import { hasNative, native } from "../native";

/** Logged once the port is open; the host waits for this line on the guest console. */
export const SERIAL_READY_MSG = "agent serving on virtio-serial";
/** How often to look for a host while none is connected and nothing says when one comes. */
const IDLE_POLL_MS = 20;
/** How often to look anyway when the port signals a host's coming (a signal that never came costs this much). */
export const SIGNALLED_POLL_MS = 1000;

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

/** The port's operations, as fs and the kernel offer them on its file descriptor (a seam for tests). */
export interface PortIo {
  read(buf: Buffer, cb: (err: NodeJS.ErrnoException | null, n: number) => void): void;
  write(buf: Buffer, off: number, cb: (err: NodeJS.ErrnoException | null, n: number) => void): void;
  /**
   * Calls hostMayHaveCome whenever, while armed, a host may have connected; null when the port
   * cannot say (then it is polled). Armed only while no host is connected: connected, data would
   * signal too.
   */
  watchHost?(hostMayHaveCome: () => void): { arm(on: boolean): void } | null;
}

export function fdPort(fd: number): PortIo {
  return {
    read: (buf, cb) => fs.read(fd, buf, 0, buf.length, null, cb),
    write: (buf, off, cb) => fs.write(fd, buf, off, buf.length - off, null, cb),
    watchHost(hostMayHaveCome) {
      if (!hasNative()) return null;
      // the listener first: SIGIO's default action ends the process
      process.on("SIGIO", hostMayHaveCome);
      return { arm: (on) => native().setAsync(fd, on) };
    },
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
export function servePort(io: PortIo, server: Server, log: Logger, idlePollMs = IDLE_POLL_MS, signalledPollMs = SIGNALLED_POLL_MS): void {
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
  let reading = false;
  /** A signal came while a read was out: that read's 0 may be older than the host. */
  let again = false;
  let armed = false;
  let timer: NodeJS.Timeout | null = null;
  const kick = () => {
    if (session) return;
    if (reading) {
      again = true;
      return;
    }
    if (timer) clearTimeout(timer);
    timer = null;
    readNext();
  };
  let watcher: { arm(on: boolean): void } | null = null;
  const poll = (e: unknown) => {
    log.warn("virtio-serial port cannot signal a host's coming: polling it", { error: (e as Error).message });
    watcher = null;
  };
  try {
    watcher = io.watchHost?.(kick) ?? null;
  } catch (e) {
    poll(e);
  }
  const arm = (on: boolean): boolean => {
    if (!watcher || armed === on) return false;
    try {
      watcher.arm(on);
      armed = on;
      return true;
    } catch (e) {
      poll(e);
      return false;
    }
  };
  const readNext = () => {
    reading = true;
    again = false;
    io.read(buf, (err, n) => {
      reading = false;
      if (err || n === 0) {
        if (session) {
          log.debug("host disconnected from the virtio-serial port");
          session.finish();
          session = null;
        }
        if (err && err.code !== "EAGAIN") log.warn("virtio-serial read failed", { error: err.message });
        // Just armed: a host that came between that read and the arming sent no signal, so look once more.
        if (arm(true) || again) return readNext();
        timer = setTimeout(() => ((timer = null), readNext()), watcher ? signalledPollMs : idlePollMs);
        return;
      }
      if (!session) {
        log.debug("host connected to the virtio-serial port");
        arm(false);
        const s = new Session(write);
        s.on("error", () => s.finish());
        session = s;
        server.handle(s);
      }
      session.push(Buffer.from(buf.subarray(0, n)));
      readNext();
    });
  };
  readNext();
}
