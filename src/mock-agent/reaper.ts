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
    this.poll(); // which paces the timer
  }

  poll(): void {
    const n = native();
    // Every exited child at once: waitpid(-1) takes what the old scan of each thread's
    // /proc/self/task/*/children found, a stat of each, and took ~1/6 of a TCG guest agent's CPU
    // on a pod's path. Nothing else waits for our children (an agent with a reaper spawns nothing
    // through child_process: runtime/exec.ts), so none is taken from anyone.
    for (;;) {
      let r: { pid: number; status: number } | null;
      try {
        r = n.waitpid(-1);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ECHILD") throw e;
        break; // no children at all
      }
      if (!r) break;
      const cb = this.watched.get(r.pid);
      if (cb) {
        this.watched.delete(r.pid);
        cb(r.status);
      } else {
        // an orphan of a host-pid container, or a container process that died before runc told us its pid
        this.unclaimed.set(r.pid, { status: r.status, at: Date.now() });
      }
    }
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
    // Orphans of host-pid containers that nobody will ever ask about: forget them after a while.
    const old = Date.now() - 60_000;
    for (const [pid, e] of this.unclaimed) if (e.at < old) this.unclaimed.delete(pid);
    this.pace();
  }
}
