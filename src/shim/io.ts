// The client's stdio, as containerd names it in Create and Exec: fifo paths
// (or fifo://), file:// to append to, binary:// for a logging program, and ""
// for none. The shim holds its own ends so that they never hit ENXIO or EOF
// early, as runc's shim does.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { spawn } from "node:child_process";
import { Readable, Writable } from "node:stream";
import { invalidArgument } from "../errdefs";
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
    // As runc's shim: the log's directory is made if need be.
    fs.mkdirSync(path.dirname(u.path), { recursive: true, mode: 0o755 });
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
  // Each query key, then its first value, as separate arguments (containerd's NewBinaryCmd).
  const args: string[] = [];
  if (q >= 0) {
    const seen = new Set<string>();
    for (const [k, v] of new URLSearchParams(rest.slice(q + 1))) {
      if (seen.has(k)) continue;
      seen.add(k);
      args.push(k, v);
    }
  }
  if (scheme !== "fifo" && scheme !== "file" && scheme !== "binary") throw invalidArgument(`stdio scheme ${scheme}:// is not supported (want fifo, file or binary)`);
  return { scheme, path: p, args };
}

/** Whose stdio it is: a binary:// logger is told (the container's id for its init, the exec's for an exec). */
export interface IoOwner {
  id: string;
  namespace: string;
}

/** Opens the client's streams for one process; with a binary:// logger, `ready` settles once it says so. */
export function openIO(paths: StdioPaths, owner: IoOwner = { id: "", namespace: "" }): ProcessIO {
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
    let ready: Promise<void> | undefined;
    const out = paths.stdout ? parseUri(paths.stdout) : null;
    if (out?.scheme === "binary") {
      [stdout, stderr, ready] = spawnLogger(out, owner, closers);
    } else {
      stdout = openOutput(paths.stdout, closers);
      stderr = paths.terminal ? null : openOutput(paths.stderr, closers);
    }
    return {
      stdin,
      stdout,
      stderr,
      ready,
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

const LOGGER_TERM_TIMEOUT_MS = 12_000;
const LOGGER_DRAIN_MS = 1_000;

/**
 * binary://path?args: containerd's logging-binary protocol (pkg/process
 * NewBinaryIO): the program gets the process's stdout as fd 3, stderr as fd 4,
 * CONTAINER_ID and CONTAINER_NAMESPACE in its environment, and fd 5, which it
 * writes to or closes once it is ready. As runc's shim does, the process is not
 * started before that, so no early output is lost.
 */
function spawnLogger(u: Uri, owner: IoOwner, closers: (() => void)[]): [Writable, Writable, Promise<void>] {
  const child = spawn(u.path, u.args, {
    stdio: ["ignore", "ignore", "ignore", "pipe", "pipe", "pipe"],
    // Nothing of the shim's own environment, as in runc's shim.
    env: { CONTAINER_ID: owner.id, CONTAINER_NAMESPACE: owner.namespace },
    detached: true,
  });
  const out = child.stdio[3] as Writable;
  const err = child.stdio[4] as Writable;
  const signal = (child.stdio as unknown as Readable[])[5];
  out.on("error", () => {});
  err.on("error", () => {});
  const ready = new Promise<void>((resolve, reject) => {
    const done = () => {
      signal.destroy();
      resolve();
    };
    signal.once("data", done);
    signal.once("end", done);
    signal.once("error", done);
    child.once("error", (e) => reject(invalidArgument(`stdout ${u.path}: cannot start the logging binary: ${e.message}`)));
  });
  closers.push(() => {
    out.end();
    err.end();
    signal.destroy();
    // Closing fds 3 and 4 gives the logger EOF, and most exit on it. runc's shim, which holds
    // them until Delete, sends SIGTERM then and SIGKILL 12 s later; this shim closes them at the
    // exit, so it lets the logger drain first.
    const alive = () => child.exitCode === null && child.signalCode === null;
    const term = setTimeout(() => {
      if (!alive()) return;
      child.kill("SIGTERM");
      const kill = setTimeout(() => alive() && child.kill("SIGKILL"), LOGGER_TERM_TIMEOUT_MS);
      kill.unref();
      child.once("exit", () => clearTimeout(kill));
    }, LOGGER_DRAIN_MS);
    term.unref();
    child.once("exit", () => clearTimeout(term));
  });
  child.unref();
  return [out, err, ready];
}
