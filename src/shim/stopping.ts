// A shim daemon that has accepted its last Shutdown may still be stopping its
// sandbox (the agent or VM goes after the last Delete's answer): it keeps its
// socket served until then, so that containerd's `delete` finds it alive and
// leaves the cleanup to it. <socket>.stopping says so, with its pid: a `start`
// for a new sandbox of the same id (`ctr run --rm x` twice) then waits for it
// to exit instead of joining a shim on its way out, and never shares the run
// directory with its teardown.
import fs from "node:fs";
import { processAlive, processStartTime } from "../util/proc";
import { writeFileAtomic } from "../util/atomic-file";

/** Where the daemon serving socket says it is stopping. */
export function stoppingMarker(socket: string): string {
  return `${socket}.stopping`;
}

/** Written by the daemon once it has accepted Shutdown; removed after its socket, just before it exits. */
export function markStopping(socket: string): void {
  writeFileAtomic(stoppingMarker(socket), `${process.pid} ${processStartTime(process.pid) ?? ""}\n`);
}

export function clearStopping(socket: string): void {
  fs.rmSync(stoppingMarker(socket), { force: true });
}

/** The stopping daemon named by socket's marker, if it still runs. */
export function stoppingDaemon(socket: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(stoppingMarker(socket), "utf8");
  } catch {
    return null;
  }
  const [pid, start] = text.trim().split(" ");
  const n = Number(pid);
  if (!Number.isSafeInteger(n) || n <= 0 || !start || !processAlive(n, start)) return null;
  return n;
}

/**
 * Waits for a daemon stopping on socket to exit (at most timeoutMs). Throws if it still runs: a
 * start must not join it. True when it died before it had stopped (a clean exit removes the
 * marker): what it left is for the caller to reap, the marker with it.
 */
export async function waitStopped(socket: string, timeoutMs = 20_000): Promise<boolean> {
  if (!fs.existsSync(stoppingMarker(socket))) return false;
  const t0 = Date.now();
  for (let pid = stoppingDaemon(socket); pid !== null; pid = stoppingDaemon(socket)) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`the shim that served this sandbox id before (pid ${pid}) is still stopping its sandbox after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return fs.existsSync(stoppingMarker(socket));
}
