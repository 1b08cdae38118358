// A VM's death takes its containers with it; a host agent's does not. When
// the host agent is gone (stopped or killed), whatever it left in its runc
// root is force-deleted, so a dead "VM" never leaves containers running.
import fs from "node:fs";
import { execFileSync } from "node:child_process";

export function reapRuncOrphans(runcRoot: string | undefined, warn: (m: string) => void = () => {}): string[] {
  if (!runcRoot || !fs.existsSync(runcRoot)) return [];
  // runc keeps one directory per container in its root, and removes it on
  // delete: an empty root (the usual case, after an agent that cleaned up)
  // spares running runc, ~10 ms with the daemon blocked, on every stop.
  try {
    if (fs.readdirSync(runcRoot).length === 0) return [];
  } catch {
    return [];
  }
  let ids: string[] = [];
  try {
    ids = execFileSync("runc", ["--root", runcRoot, "list", "-q"], { stdio: ["ignore", "pipe", "ignore"] }).toString().split("\n").filter(Boolean);
  } catch {
    return [];
  }
  for (const id of ids) {
    try {
      execFileSync("runc", ["--root", runcRoot, "delete", "--force", id], { stdio: ["ignore", "ignore", "pipe"] });
    } catch (e) {
      warn(`runc delete --force ${id}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return ids;
}
