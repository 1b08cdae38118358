// Exit statuses of processes that are not our children by birth: runc
// re-parents container processes to the agent, which is a child subreaper
// (as containerd's runc shim is). Node reaps only what it spawned itself.
import fs from "node:fs";
import { native } from "../native";

type Exit = (status: number) => void;

export class Reaper {
  private readonly watched = new Map<number, Exit>();
  /** Pids child_process spawned: libuv reaps those, we must not steal them. */
  private readonly libuvChildren = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly onSignal = () => this.poll();

  start(): void {
    native().setChildSubreaper();
    process.on("SIGCHLD", this.onSignal);
    // SIGCHLD can coalesce and libuv may swallow one meant for us: poll too.
    this.timer = setInterval(() => this.poll(), 200);
    this.timer.unref();
  }

  stop(): void {
    process.removeListener("SIGCHLD", this.onSignal);
    if (this.timer) clearInterval(this.timer);
  }

  trackSpawned(pid: number | undefined): void {
    if (pid) this.libuvChildren.add(pid);
  }

  untrackSpawned(pid: number | undefined): void {
    if (pid) this.libuvChildren.delete(pid);
  }

  /** Calls onExit once with the exit status of pid (already re-parented to us, or about to be). */
  watch(pid: number, onExit: Exit): void {
    this.watched.set(pid, onExit);
    this.poll();
  }

  poll(): void {
    const n = native();
    for (const [pid, cb] of this.watched) {
      let r: { pid: number; status: number } | null;
      try {
        r = n.waitpid(pid);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ECHILD") throw e;
        // Not our child (yet): runc may not have exited so the re-parenting has
        // not happened. If the process is gone altogether, someone else reaped it.
        if (!fs.existsSync(`/proc/${pid}`)) {
          this.watched.delete(pid);
          cb(255);
        }
        continue;
      }
      if (r) {
        this.watched.delete(pid);
        cb(r.status);
      }
    }
    this.reapStrays();
  }

  /** Zombies re-parented to us that nobody watches (orphans of a host-pid container). */
  private reapStrays(): void {
    let children: string;
    try {
      children = fs
        .readdirSync(`/proc/self/task`)
        .map((t) => {
          try {
            return fs.readFileSync(`/proc/self/task/${t}/children`, "utf8");
          } catch {
            return "";
          }
        })
        .join(" ");
    } catch {
      return;
    }
    for (const s of children.split(/\s+/)) {
      const pid = Number(s);
      if (!pid || this.watched.has(pid) || this.libuvChildren.has(pid)) continue;
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      } catch {
        continue;
      }
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state === "Z") {
        try {
          native().waitpid(pid);
        } catch {
          /* raced with another reaper */
        }
      }
    }
  }
}
