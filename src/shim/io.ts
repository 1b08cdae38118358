// The client's stdio, as containerd names it in Create and Exec: fifo paths
// (or fifo://), file:// to append to, binary:// for a logging program, and ""
// for none. The shim holds its own ends so that they never hit ENXIO or EOF
// early, as runc's shim does.
import fs from "node:fs";
import net from "node:net";
import { spawn } from "node:child_process";
import { Readable, Writable } from "node:stream";
import { invalidArgument } from "../ttrpc/status";
import type { ProcessIO, StdioPaths } from "../pod/process";

const { O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK, O_APPEND, O_CREAT } = fs.constants;

function isFifo(p: string): boolean {
  try {
    return fs.statSync(p).isFIFO();
  } catch {
    return false;
  }
}

/** A non-blocking stream on a fifo end; libuv treats fifos as pipes. */
function fifoStream(fd: number, readable: boolean): net.Socket {
  const s = new net.Socket({ fd, readable, writable: !readable });
  s.on("error", () => {});
  return s;
}

function openOutput(uri: string, closers: (() => void)[]): Writable | null {
  if (!uri) return null;
  const u = parseUri(uri);
  if (u.scheme === "file") {
    const fd = fs.openSync(u.path, O_WRONLY | O_APPEND | O_CREAT, 0o644);
    const s = fs.createWriteStream("", { fd, autoClose: true });
    closers.push(() => s.end());
    return s;
  }
  if (u.scheme === "binary") throw invalidArgument("binary:// outputs are opened for the pair (see openIO)");
  if (!isFifo(u.path)) throw invalidArgument(`stdio ${uri} is not a fifo`);
  // O_RDWR: never ENXIO without a reader, never EPIPE when the reader goes.
  const fd = fs.openSync(u.path, O_RDWR | O_NONBLOCK);
  const s = fifoStream(fd, false);
  closers.push(() => s.destroy());
  return s;
}

interface Uri {
  scheme: "fifo" | "file" | "binary";
  path: string;
  args: string[];
}

export function parseUri(uri: string): Uri {
  const m = /^([a-z]+):\/\/(.*)$/.exec(uri);
  if (!m) {
    if (!uri.startsWith("/")) throw invalidArgument(`stdio path ${JSON.stringify(uri)} is not absolute`);
    return { scheme: "fifo", path: uri, args: [] };
  }
  const [, scheme, rest] = m;
  const q = rest.indexOf("?");
  const p = decodeURIComponent(q >= 0 ? rest.slice(0, q) : rest);
  if (!p.startsWith("/")) throw invalidArgument(`stdio ${JSON.stringify(uri)}: path is not absolute`);
  const args: string[] = [];
  if (q >= 0) for (const [k, v] of new URLSearchParams(rest.slice(q + 1))) args.push(v === "" ? k : `${k}=${v}`);
  if (scheme !== "fifo" && scheme !== "file" && scheme !== "binary") throw invalidArgument(`stdio scheme ${scheme}:// is not supported (want fifo, file or binary)`);
  return { scheme, path: p, args };
}

/** Opens the client's streams for one process. */
export function openIO(paths: StdioPaths): ProcessIO {
  const closers: (() => void)[] = [];
  try {
    let stdin: Readable | null = null;
    if (paths.stdin) {
      const u = parseUri(paths.stdin);
      if (u.scheme !== "fifo") throw invalidArgument(`stdin ${paths.stdin}: only fifos can be stdin`);
      if (!isFifo(u.path)) throw invalidArgument(`stdin ${paths.stdin} is not a fifo`);
      const rfd = fs.openSync(u.path, O_RDONLY | O_NONBLOCK);
      // Our own writer keeps the fifo from reading EOF until CloseIO; then EOF
      // comes once the client has closed its end too.
      const wfd = fs.openSync(u.path, O_WRONLY | O_NONBLOCK);
      const r = fifoStream(rfd, true) as net.Socket & { closeWriter?: () => void };
      let wOpen = true;
      r.closeWriter = () => {
        if (!wOpen) return;
        wOpen = false;
        fs.closeSync(wfd);
      };
      stdin = r;
      closers.push(() => {
        r.closeWriter!();
        r.destroy();
      });
    }
    let stdout: Writable | null;
    let stderr: Writable | null;
    const out = paths.stdout ? parseUri(paths.stdout) : null;
    if (out?.scheme === "binary") {
      [stdout, stderr] = spawnLogger(out, closers);
    } else {
      stdout = openOutput(paths.stdout, closers);
      stderr = paths.terminal ? null : openOutput(paths.stderr, closers);
    }
    return {
      stdin,
      stdout,
      stderr,
      close() {
        for (const c of closers.splice(0)) {
          try {
            c();
          } catch {
            /* already closed */
          }
        }
      },
    };
  } catch (e) {
    for (const c of closers) {
      try {
        c();
      } catch {
        /* ignore */
      }
    }
    throw e;
  }
}

/**
 * binary://path?args: containerd's logging-binary protocol: the program gets
 * the process's stdout as fd 3, stderr as fd 4, and a pipe on fd 5 that it
 * closes once ready.
 */
function spawnLogger(u: Uri, closers: (() => void)[]): [Writable, Writable] {
  const child = spawn(u.path, u.args, {
    stdio: ["ignore", "ignore", "ignore", "pipe", "pipe", "pipe"],
    env: { ...process.env, CONTAINER_ID: "", CONTAINER_NAMESPACE: "" },
    detached: true,
  });
  const out = child.stdio[3] as Writable;
  const err = child.stdio[4] as Writable;
  out.on("error", () => {});
  err.on("error", () => {});
  closers.push(() => {
    out.end();
    err.end();
  });
  child.unref();
  return [out, err];
}
