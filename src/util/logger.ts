// Log lines in logrus's text format, which is what containerd shows from a
// shim's log fifo. Writes never block: a full or absent reader loses lines
// rather than stalling the shim.
import fs from "node:fs";

export type Level = "debug" | "info" | "warning" | "error";
const ORDER: Record<Level, number> = { debug: 0, info: 1, warning: 2, error: 3 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function quote(v: unknown): string {
  const s = v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v);
  return /^[A-Za-z0-9_.\/:@-]+$/.test(s) ? s : JSON.stringify(s);
}

export function format(level: Level, msg: string, fields: Record<string, unknown>): string {
  let line = `time="${new Date().toISOString()}" level=${level} msg=${JSON.stringify(msg)}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${quote(v)}`;
  return line + "\n";
}

export class FdLogger implements Logger {
  constructor(
    private readonly fd: number | null,
    private readonly min: Level = "info",
    private readonly fields: Record<string, unknown> = {},
  ) {}

  private write(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (this.fd === null || ORDER[level] < ORDER[this.min]) return;
    const line = format(level, msg, { ...this.fields, ...fields });
    try {
      fs.writeSync(this.fd, line);
    } catch {
      // EAGAIN from a full fifo, EPIPE from a gone reader: drop the line.
    }
  }

  debug(msg: string, f?: Record<string, unknown>) {
    this.write("debug", msg, f);
  }
  info(msg: string, f?: Record<string, unknown>) {
    this.write("info", msg, f);
  }
  warn(msg: string, f?: Record<string, unknown>) {
    this.write("warning", msg, f);
  }
  error(msg: string, f?: Record<string, unknown>) {
    this.write("error", msg, f);
  }
  child(fields: Record<string, unknown>): Logger {
    return new FdLogger(this.fd, this.min, { ...this.fields, ...fields });
  }
}

export const nullLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return nullLogger;
  },
};

/** Opens a log destination (fifo or file) for appending without ever blocking. */
export function openLogFd(file: string): number | null {
  try {
    return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_NONBLOCK | fs.constants.O_CREAT, 0o600);
  } catch {
    return null;
  }
}
