// What keeps a host agent alive: its holder. A shim that spawned the agent
// holds the other end of fd N; EOF there means the shim is gone, and with it
// every reason to run. A warm agent's holder is the factory until it hands the
// agent to a shim: then the factory writes "ADOPT <pid> <start time>" on that
// fd, the agent answers "ADOPTED" and from then on lives as long as that
// process does, so that the factory's own end (or death) no longer matters.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import { processAlive, setProcessPriority } from "../util/proc";
import type { Logger } from "../util/logger";
import { UNCLAIMED_MS } from "../util/unclaimed";

/** How often an adopted agent looks for its shim: what a dead shim's agent costs at most in extra life. */
const ADOPTED_POLL_MS = 250;

export interface Lifeline {
  /** A connection came: whoever adopted this agent uses it. */
  claimed(): void;
}

export function watchLifeline(fd: number, log: Logger, gone: (why: string) => void): Lifeline {
  const w = new net.Socket({ fd, readable: true, writable: true });
  let adopted = false;
  let unclaimed: NodeJS.Timeout | null = null;
  let claimed = false;
  let text = "";
  const lost = () => {
    if (!adopted) gone("shim went away");
  };
  w.on("data", (d: Buffer) => {
    if (adopted) return;
    text += d.toString("latin1");
    // Anything but an adoption is ignored, as the plain lifeline always ignored what came down it.
    const m = /^ADOPT (\d+) (\d+)\n/m.exec(text);
    if (!m) {
      if (text.length > 4096) text = "";
      return;
    }
    const pid = Number(m[1]);
    const startTime = m[2];
    if (!processAlive(pid, startTime)) {
      w.end("REFUSED no such process\n");
      return;
    }
    adopted = true;
    // A factory boots its pool at low priority (background work); serving a pod is not. Every thread:
    // the libuv pool that does the agent's file work was made while the process was niced.
    try {
      setProcessPriority(process.pid, os.getPriority(pid));
    } catch {
      /* the holder is gone */
    }
    log.info("adopted", { holder: pid, priority: os.getPriority() });
    w.write("ADOPTED\n");
    if (!claimed) {
      unclaimed = setTimeout(() => gone("adopted, but never dialled"), UNCLAIMED_MS);
      unclaimed.unref();
    }
    const t = setInterval(() => {
      if (!processAlive(pid, startTime)) {
        clearInterval(t);
        gone("shim went away");
      }
    }, ADOPTED_POLL_MS);
  });
  w.on("end", lost);
  w.on("close", lost);
  w.on("error", lost);
  return {
    claimed() {
      // the factory's own check of a pooled agent is no taker's connection
      if (!adopted) return;
      claimed = true;
      if (unclaimed) clearTimeout(unclaimed);
    },
  };
}

/** Says READY on fd once the agent serves (the holder waits for the word rather than polling the socket). */
export function signalReady(fd: number, log: Logger): void {
  try {
    fs.writeSync(fd, "READY\n");
  } catch (e) {
    log.warn("could not signal readiness", { error: (e as Error).message });
  }
}
