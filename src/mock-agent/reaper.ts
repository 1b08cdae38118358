// Exit statuses of processes that are not our children by birth: runc
// re-parents container processes to the agent, which is a child subreaper
// (as containerd's runc shim is). Node reaps only what it spawned itself, and
// an agent with a reaper spawns nothing through Node: what it runs, it
// posix_spawn()s (runtime/exec.ts) and watches here.
import fs from "node:fs";
import { native } from "../native";

type Exit = (status: number) => void;

/** The safety poll's period while exits are awaited. */
const POLL_MS = 200;

export class Reaper {
  private readonly watched = new Map<number, Exit>();
  /**
   * Exits of re-parented processes nobody watched yet. A container process can
   * die and reach us before runc has even told us its pid; its status waits here.
   */
  private readonly unclaimed = new Map<number, { status: number; at: number }>();
  private timer: NodeJS.Timeout | null = null;
  private started = false;
  private readonly onSignal = () => this.poll();

  start(): void {
    native().setChildSubreaper();
    process.on("SIGCHLD", this.onSignal);
    this.started = true;
  }

  stop(): void {
    process.removeListener("SIGCHLD", this.onSignal);
    this.started = false;
    this.pace();
  }

  /**
   * SIGCHLD can coalesce and libuv may swallow one meant for us: while an exit is awaited, poll
   * too. Only then: an idle agent's polls (and their /proc reads) kept a TCG guest's vCPU ~2.5 %
   * of a host CPU busy. A stray that exits meanwhile still sends its SIGCHLD, and watch() of a
   * pid whose signal was lost finds its exit at once.
   */
  private pace(): void {
    const want = this.started && this.watched.size > 0;
    if (want && !this.timer) {
      this.timer = setInterval(() => this.poll(), POLL_MS);
      this.timer.unref();
    } else if (!want && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Calls onExit once with the exit status of pid (already re-parented to us, or about to be). */
  watch(pid: number, onExit: Exit): void {
    const early = this.unclaimed.get(pid);
    if (early) {
      this.unclaimed.delete(pid);
      onExit(early.status);
      return;
    }
    this.watched.set(pid, onExit);
    this.poll();
    this.pace();
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
        const early = this.unclaimed.get(pid);
        if (early) {
          this.unclaimed.delete(pid);
          this.watched.delete(pid);
          cb(early.status);
        } else if (!fs.existsSync(`/proc/${pid}`)) {
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
    this.pace();
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
      if (!pid || this.watched.has(pid)) continue;
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      } catch {
        continue;
      }
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state === "Z") {
        try {
          const r = native().waitpid(pid);
          if (r) this.unclaimed.set(pid, { status: r.status, at: Date.now() });
        } catch {
          /* raced with another reaper */
        }
      }
    }
    // Orphans of host-pid containers that nobody will ever ask about: forget them after a while.
    const old = Date.now() - 60_000;
    for (const [pid, e] of this.unclaimed) if (e.at < old) this.unclaimed.delete(pid);
  }
}
