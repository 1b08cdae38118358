// Where a factory's ready processes wait: the cgroups of the last process that took one (a shim,
// or a `start`: containerd's, as a rule). A move between cgroups waits for an RCU grace period
// (~13 ms here, util/cgroup.ts); made in the background while they wait, the taker's own move of
// the one it takes finds nothing left to do, and the pod's path pays none.
import { cgroupDirsOf, moveIntoLater } from "../../util/cgroup";

export class TakerCgroups {
  private dirs: string[] = [];

  /** Notes taker's cgroups; true when they are not the last taker's (the ready ones should move). */
  learn(taker: number | undefined): boolean {
    if (!taker || !Number.isInteger(taker) || taker <= 0) return false;
    const dirs = cgroupDirsOf(taker);
    if (!dirs.length || dirs.join("\n") === this.dirs.join("\n")) return false;
    this.dirs = dirs;
    return true;
  }

  /** Moves pid into them, in the background; nothing before the first taker. */
  place(pid: number): void {
    if (this.dirs.length) void moveIntoLater(pid, this.dirs);
  }
}
