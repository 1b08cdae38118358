// Per-sandbox run directories, and the record `delete` reads after a crash.
import { sha256Hex } from "../util/sha256";
import fs from "node:fs";
import path from "node:path";
import type { VmRecord } from "./types";
import { processStartTime } from "../util/proc";
import { writeFileAtomic } from "../util/atomic-file";

export function runRoot(): string {
  return process.env.SHIMLAB_RUN_DIR || "/run/shimlab";
}

/** <root>/<namespace>/<sandbox id>, 0700. Ids are validated before they get here. */
export function sandboxRunDir(namespace: string, sandboxId: string, root = runRoot()): string {
  return path.join(root, namespace, sandboxId);
}

/** A unix socket path under dir, or under <root>/sock by hash when dir is too deep for sun_path. */
export function socketIn(dir: string, name: string, root = runRoot()): string {
  const p = path.join(dir, name);
  if (p.length <= 100) return p;
  const h = sha256Hex(p).slice(0, 24);
  const d = path.join(root, "sock");
  fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  return path.join(d, `${h}-${name}`.slice(0, 40));
}

export { processStartTime } from "../util/proc";

export function writeVmRecord(dir: string, rec: VmRecord): void {
  writeFileAtomic(path.join(dir, "vm.json"), JSON.stringify(rec));
}

export function readVmRecord(dir: string): VmRecord | null {
  const file = path.join(dir, "vm.json");
  // no record is the usual case at `delete`, and a thrown ENOENT costs ~0.5 ms of stack capture there
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as VmRecord;
  } catch {
    return null;
  }
}

/** Kills pid only if it is still the process that was recorded. */
export function killRecorded(pid: number, startTime: string, signal: NodeJS.Signals = "SIGKILL"): boolean {
  if (!pid || processStartTime(pid) !== startTime) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * A warm agent nobody will serve (held by a daemon that is going, or left by one that went): killed if
 * still the one recorded, and its directory removed; with `under`, only a directory inside it (a path
 * read from a line or a file is not trusted to name one of ours).
 */
export function killWarmAgent(a: { pid: number; startTime: string; dir: string }, under?: string): void {
  killRecorded(a.pid, a.startTime);
  if (under === undefined || a.dir.startsWith(path.join(under) + path.sep)) fs.rmSync(a.dir, { recursive: true, force: true });
}

/** The record's VM or agent process and any beside it, each only if still the one recorded. */
export function killRecordedProcesses(rec: VmRecord): void {
  killRecorded(rec.pid, rec.startTime);
  for (const x of rec.extraPids ?? []) killRecorded(x.pid, x.startTime);
}
