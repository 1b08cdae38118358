// The trace recorder: one JSON line per thing that happened, from every
// process of a run (containerd's stand-in, shim start/daemon/delete, agent).
//
// SHIMLAB_TRACE=<file>  every process appends its lines to that file (one
//                       write(2) per line on an O_APPEND descriptor, so lines
//                       from several processes never interleave);
// SHIMLAB_TRACE=<dir>/  (trailing slash, or an existing directory) each
//                       process writes <dir>/<role>-<pid>.jsonl instead.
//
// Timestamps: `t` is CLOCK_MONOTONIC in microseconds (process.hrtime), which
// on Linux is one clock for every process of the machine, so lines from
// different processes sort into one timeline; `wall` is the wall clock.
import fs from "node:fs";
import path from "node:path";
import type { MessageCodec } from "../proto/message";
import { toPlain } from "../proto/message";

export const TRACE_ENV = "SHIMLAB_TRACE";
export const TRACE_VERSION = 1;

/** Who recorded a line: also the lane a lifeline marker goes to. */
export type TraceRole = "containerd" | "shim" | "shim-start" | "shim-delete" | "agent" | string;

export interface TraceRecord {
  v: number;
  /** Monotonic time in µs, comparable across the processes of one machine. */
  t: number;
  /** Wall clock, ISO 8601. */
  wall: string;
  pid: number;
  role: TraceRole;
  kind: string;
  [field: string]: unknown;
}

export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export class TraceRecorder {
  private fd: number | null = null;
  private seq = 0;
  private failed = false;
  /** Why recording stopped, if it did. */
  error: string | undefined;
  readonly file: string;

  constructor(
    target: string,
    readonly role: TraceRole,
  ) {
    const abs = path.resolve(target);
    const dirMode = target.endsWith("/") || isDir(abs);
    this.file = dirMode ? path.join(abs, `${role}-${process.pid}.jsonl`) : abs;
  }

  /** A call id unique in the whole run: pairs a call with its reply. */
  nextId(): string {
    return `${process.pid}.${++this.seq}`;
  }

  record(kind: string, fields: Record<string, unknown> = {}): void {
    if (this.failed) return;
    // The header fields last: a payload can never pass for another process's line.
    const rec: TraceRecord = { ...fields, v: TRACE_VERSION, t: monotonicMicros(), wall: new Date().toISOString(), pid: process.pid, role: this.role, kind };
    let line: string;
    try {
      line = JSON.stringify(rec, jsonSafe) + "\n";
    } catch {
      line = JSON.stringify({ ...rec, ...Object.fromEntries(Object.keys(fields).map((k) => [k, "<unserialisable>"])) }) + "\n";
    }
    try {
      if (this.fd === null) {
        fs.mkdirSync(path.dirname(this.file), { recursive: true });
        this.fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o644);
      }
      // Synchronous: a shim calls process.exit() and its last lines must be there.
      fs.writeSync(this.fd, line);
    } catch (e) {
      // A trace must never break the thing traced, and `start` may not even
      // write to stderr (containerd takes it for the address): stop quietly.
      this.failed = true;
      this.error = (e as Error).message;
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function jsonSafe(_k: string, v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  // Buffers arrive here already through their toJSON: {type: "Buffer", data: [...]}.
  const b = v as { type?: unknown; data?: unknown };
  if (b && typeof b === "object" && b.type === "Buffer" && Array.isArray(b.data)) return Buffer.from(b.data as number[]).toString("base64");
  return v;
}

let current: TraceRecorder | null | undefined;

/**
 * The process's recorder when SHIMLAB_TRACE is set, else null. Callers check
 * the variable before loading this module at all, so tracing off costs nothing.
 */
export function processTracer(role: TraceRole, env: NodeJS.ProcessEnv = process.env): TraceRecorder | null {
  if (current !== undefined) return current;
  const target = env[TRACE_ENV];
  if (!target) return (current = null);
  // Children (the daemon, the agent) run in other directories: hand them an absolute path.
  if (!path.isAbsolute(target)) env[TRACE_ENV] = path.resolve(target) + (target.endsWith("/") ? "/" : "");
  current = new TraceRecorder(target, role);
  return current;
}

/** For tests: forget the process's recorder. */
export function resetProcessTracer(): void {
  current?.close();
  current = undefined;
}

const MAX_SUMMARY = 1200;

/** A message as a small plain object: enough to read in a diagram, never a whole OCI spec. */
export function summarize(codec: MessageCodec<unknown, unknown> | undefined, msg: unknown): Record<string, unknown> | undefined {
  if (!codec || msg === undefined || msg === null) return undefined;
  let plain: Record<string, unknown>;
  try {
    plain = toPlain(codec, msg);
  } catch {
    return { _type: codec.typeName };
  }
  const s = JSON.stringify(plain, jsonSafe);
  if (s.length <= MAX_SUMMARY) return plain;
  const small: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(plain)) {
    if (typeof v === "object" && v !== null) small[k] = "…";
    else if (typeof v === "string" && v.length > 200) small[k] = v.slice(0, 200) + "…";
    else small[k] = v;
  }
  return small;
}
