// A VM's death takes its containers with it; a host agent's does not. When
// the host agent is gone (stopped or killed), whatever it left in its runc
// root is force-deleted, so a dead "VM" never leaves containers running:
// by the driver as it stops the agent, and by its reaper after a dead shim.
import fs from "node:fs";
import type { CommandRunner } from "./types";
import { firstLine, runCommand } from "./command";

/** The containers runc knows in root; none for a root it cannot list. */
export function listRunc(runcRoot: string, run: CommandRunner = runCommand): string[] {
  // runc keeps one directory per container in its root, and removes it on
  // delete: an empty root (the usual case, after an agent that cleaned up)
  // spares running runc, ~10 ms with the caller blocked.
  try {
    if (fs.readdirSync(runcRoot).length === 0) return [];
  } catch {
    return [];
  }
  try {
    return run("runc", ["--root", runcRoot, "list", "-q"]).split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

/** Kills and deletes one container; runc's --force answers a container it does not know with success. */
export function forceDeleteRunc(runcRoot: string, id: string, warn: (m: string) => void, run: CommandRunner = runCommand): void {
  try {
    run("runc", ["--root", runcRoot, "delete", "--force", id]);
  } catch (e) {
    warn(`runc delete --force ${id}: ${firstLine(e)}`);
  }
}

export function reapRuncOrphans(runcRoot: string | undefined, warn: (m: string) => void = () => {}, run: CommandRunner = runCommand): string[] {
  if (!runcRoot || !fs.existsSync(runcRoot)) return [];
  const ids = listRunc(runcRoot, run);
  for (const id of ids) forceDeleteRunc(runcRoot, id, warn, run);
  return ids;
}
