// Stdio for a container process: real pipes (as runc's shim uses, so that
// /dev/stdout works inside), or a pty whose master runc sends us.
import net from "node:net";
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import tty from "node:tty";
import type { Readable, Writable } from "node:stream";
import { native } from "../../native";

export interface PipeSet {
  /** fds the child gets as 0, 1, 2 */
  child: [number, number, number];
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /** Closes the child's ends in this process, once the child has them. */
  closeChildEnds(): void;
}

/** A pipe's read end as a stream (non-blocking, for libuv). */
export function pipeReader(fd: number): net.Socket {
  native().setNonBlocking(fd);
  return new net.Socket({ fd, readable: true, writable: false });
}

export function makePipes(): PipeSet {
  const n = native();
  const inP = n.pipe();
  const outP = n.pipe();
  const errP = n.pipe();
  n.setNonBlocking(inP.write);
  const stdin = new net.Socket({ fd: inP.write, readable: false, writable: true });
  const stdout = pipeReader(outP.read);
  const stderr = pipeReader(errP.read);
  stdin.on("error", () => {}); // EPIPE when the process stops reading: its problem, not ours
  return {
    child: [inP.read, outP.write, errP.write],
    stdin,
    stdout,
    stderr,
    closeChildEnds() {
      for (const fd of [inP.read, outP.write, errP.write]) {
        try {
          fs.closeSync(fd);
        } catch {
          /* already closed */
        }
      }
    },
  };
}

let consoleSeq = 0;

/** A console socket runc connects to with --console-socket; resolves with the pty master. */
export function consoleSocket(): { path: string; master: Promise<number>; close(): void } {
  const p = path.join(os.tmpdir(), `shimlab-console-${process.pid}-${++consoleSeq}.sock`);
  const n = native();
  const fd = n.consoleListen(p);
  const master = n.consoleReceive(fd, 30_000);
  const close = () => {
    try {
      n.closeFd(fd);
    } catch {
      /* closed */
    }
    fs.rmSync(p, { force: true });
  };
  master.then(close, close);
  return { path: p, master, close };
}

/** Streams over a pty master fd: output to read, input to write, and resize. */
export function ptyStreams(masterFd: number): { stream: tty.ReadStream; resize(rows: number, cols: number): void } {
  const stream = new tty.ReadStream(masterFd);
  return {
    stream,
    resize(rows, cols) {
      native().setWinsize(masterFd, rows, cols);
    },
  };
}
