// The event orderings runc's shim guarantees beyond the runtime-v2 MUSTs:
// a process's exit never goes out before its start, and a container's init
// exit goes out only after the exits of all its started execs.
export interface ExitPublisher {
  publishExit(containerId: string, processId: string): void;
}

interface ContainerOrder {
  started: Set<string>;
  /** exits that arrived before their start was published */
  early: Set<string>;
  /** execs whose start went out and whose exit has not */
  liveExecs: Set<string>;
  heldInit: boolean;
}

export class EventOrdering {
  private readonly byContainer = new Map<string, ContainerOrder>();

  constructor(private readonly out: ExitPublisher) {}

  private c(containerId: string): ContainerOrder {
    let c = this.byContainer.get(containerId);
    if (!c) {
      c = { started: new Set(), early: new Set(), liveExecs: new Set(), heldInit: false };
      this.byContainer.set(containerId, c);
    }
    return c;
  }

  /** Call right after the start (or exec-started) event was published. */
  started(containerId: string, execId: string): void {
    const c = this.c(containerId);
    c.started.add(execId);
    if (execId) c.liveExecs.add(execId);
    if (c.early.delete(execId)) this.exited(containerId, execId);
  }

  /** A process exited: publish its exit now, or when the rules allow. */
  exited(containerId: string, execId: string): void {
    const c = this.c(containerId);
    if (!c.started.has(execId)) {
      c.early.add(execId);
      return;
    }
    if (execId) {
      this.out.publishExit(containerId, execId);
      c.liveExecs.delete(execId);
      if (c.heldInit && c.liveExecs.size === 0) {
        c.heldInit = false;
        this.out.publishExit(containerId, "");
      }
      return;
    }
    if (c.liveExecs.size > 0) {
      c.heldInit = true;
      return;
    }
    this.out.publishExit(containerId, "");
  }

  /** An exec deleted before it ever exited (created, never started) no longer holds the init back. */
  execGone(containerId: string, execId: string): void {
    const c = this.c(containerId);
    c.early.delete(execId);
    if (c.liveExecs.delete(execId) && c.heldInit && c.liveExecs.size === 0) {
      c.heldInit = false;
      this.out.publishExit(containerId, "");
    }
  }

  forget(containerId: string): void {
    this.byContainer.delete(containerId);
  }

  /** Whether an exit for this process is being held back (for tests and traces). */
  isHeld(containerId: string, execId: string): boolean {
    const c = this.byContainer.get(containerId);
    if (!c) return false;
    return c.early.has(execId) || (execId === "" && c.heldInit);
  }
}
