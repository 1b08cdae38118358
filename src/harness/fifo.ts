// Client-side stdio as containerd's cio makes it: fifos in a private
// directory, opened by the client before the task is created.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";

export function mkfifo(p: string, mode = 0o700): void {
  execFileSync("mkfifo", ["-m", mode.toString(8), p]);
}

export interface ClientStdio {
  dir: string;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  /** Everything the process wrote to stdout (and, with a terminal, its echo). */
  out(): string;
  err(): string;
  write(data: string | Buffer): void;
  /** Closes our end of stdin; EOF reaches the process after CloseIO. */
  closeStdin(): void;
  close(): void;
  /**
   * Resolves once no output arrived for quietMs. The client holds both ends
   * (as ctr does), so a fifo never reads EOF; after Wait returns the shim has
   * written everything, and this lets it reach us.
   */
  drained(quietMs?: number): Promise<void>;
}

/** Makes and opens the fifos; stdin is only made when asked for (as ctr does without -i). */
export function clientStdio(id: string, opts: { stdin?: boolean; terminal?: boolean; base?: string } = {}): ClientStdio {
  const dir = fs.mkdtempSync(path.join(opts.base ?? os.tmpdir(), "shimlab-fifo-"));
  const p = (n: string) => path.join(dir, `${id}-${n}`);
  const stdinPath = opts.stdin ? p("stdin") : "";
  const stdoutPath = p("stdout");
  const stderrPath = opts.terminal ? "" : p("stderr");
  for (const f of [stdinPath, stdoutPath, stderrPath]) if (f) mkfifo(f);
  const { O_RDWR, O_NONBLOCK } = fs.constants;
  const chunks: { out: Buffer[]; err: Buffer[] } = { out: [], err: [] };
  const streams: net.Socket[] = [];
  let lastData = performance.now();
  const reader = (f: string, into: Buffer[]) => {
    // O_RDWR: a reader that is also a writer never sees EOF before the shim opens its end.
    const s = new net.Socket({ fd: fs.openSync(f, O_RDWR | O_NONBLOCK), readable: true, writable: false });
    s.on("data", (d: Buffer) => {
      into.push(d);
      lastData = performance.now();
    });
    s.on("error", () => {});
    streams.push(s);
  };
  reader(stdoutPath, chunks.out);
  if (stderrPath) reader(stderrPath, chunks.err);
  let stdinSock: net.Socket | null = null;
  if (stdinPath) {
    stdinSock = new net.Socket({ fd: fs.openSync(stdinPath, O_RDWR | O_NONBLOCK), readable: false, writable: true });
    stdinSock.on("error", () => {});
  }
  return {
    dir,
    stdin: stdinPath,
    stdout: stdoutPath,
    stderr: stderrPath,
    terminal: !!opts.terminal,
    out: () => Buffer.concat(chunks.out).toString(),
    err: () => Buffer.concat(chunks.err).toString(),
    write: (d) => {
      stdinSock?.write(d);
    },
    closeStdin: () => {
      stdinSock?.end();
      stdinSock?.destroy();
    },
    close: () => {
      stdinSock?.destroy();
      for (const s of streams) s.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
    drained: async (quietMs = 30) => {
      lastData = Math.max(lastData, performance.now());
      while (performance.now() - lastData < quietMs) await new Promise((r) => setTimeout(r, quietMs / 3));
    },
  };
}
