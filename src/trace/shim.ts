// Tracing inside the shim binary. Loaded only when SHIMLAB_TRACE is set:
// main.ts and daemon.ts each call in here behind that one check, so a shim
// without tracing never loads this module nor wraps anything.
import fs from "node:fs";
import path from "node:path";
import type { ShimFlags } from "../shim/flags";
import type { EventSink } from "../shim/publisher";
import type { ShimConfig } from "../shim/config";
import type { Server } from "../ttrpc/server";
import { processTracer, type TraceRecorder } from "./recorder";
import { traceInterceptor } from "./interceptor";
import { TracedEventSink } from "./event-sink";
import { TracedHypervisor } from "./hypervisor";
import { recordFile } from "./files";

function roleOf(flags: ShimFlags): string {
  return flags.action === "" ? "shim" : `shim-${flags.action}`;
}

/**
 * The binary's own life: `start` and `delete` are calls containerd makes by
 * running it (an exec, answered by stdout and the exit status); the daemon's
 * start and exit bound the shim's lifeline.
 */
export function traceShimProcess(flags: ShimFlags): TraceRecorder | null {
  if (agentScope()) return null;
  const rec = processTracer(roleOf(flags));
  if (!rec) return null;
  const id = rec.nextId();
  const cwd = process.cwd();
  const call = flags.action === "start" || flags.action === "delete";
  rec.record(call ? "exec.call" : "proc.start", {
    id,
    from: "containerd",
    to: "shim",
    action: flags.action || "daemon",
    argv: process.argv.slice(2),
    namespace: flags.namespace,
    task: flags.id,
    cwd,
  });
  process.once("exit", (code) => {
    const extra: Record<string, unknown> = {};
    if (flags.action === "start") {
      extra.address = readSmall(path.join(cwd, "address"));
      // What start leaves behind for containerd, seen by the shim itself (a watcher may see them too).
      if (code === 0 && typeof extra.address === "string") {
        recordFile(rec, extra.address.trim().replace(/^unix:\/\//, ""));
        recordFile(rec, path.join(cwd, "address"));
      }
    }
    rec.record(call ? "exec.reply" : "proc.exit", { id, from: "shim", to: "containerd", action: flags.action || "daemon", task: flags.id, code, ok: code === 0, ...extra });
  });
  return rec;
}

/** The daemon's interfaces: events out (innermost sink) and the hypervisor (VM and agent calls). */
export function traceDaemon(events: EventSink, config: ShimConfig): { events: EventSink; config: ShimConfig } {
  const rec = processTracer("shim");
  if (!rec) return { events, config };
  return {
    events: agentScope() ? events : new TracedEventSink(events, rec),
    config: { ...config, hypervisor: () => new TracedHypervisor(config.hypervisor(), rec) },
  };
}

/**
 * SHIMLAB_TRACE_SCOPE=agent: only what lies behind the shim (VM, agent calls,
 * processes), for a tracer that sees containerd's side itself (shimlab sniff's proxy).
 */
export const TRACE_SCOPE_ENV = "SHIMLAB_TRACE_SCOPE";
function agentScope(): boolean {
  return process.env[TRACE_SCOPE_ENV] === "agent";
}

/** containerd's calls: the first interceptor, so failpoints' answers are traced as replies. */
export function traceServer(server: Server): void {
  if (agentScope()) return;
  const rec = processTracer("shim");
  if (rec) server.use(traceInterceptor(rec, "containerd", "shim"));
}

function readSmall(p: string): string | undefined {
  try {
    return fs.readFileSync(p, "utf8").slice(0, 300);
  } catch {
    return undefined;
  }
}
