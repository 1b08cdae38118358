// containerd's end of a task, written once for every stand-in user (the
// conformance checks, the scenario runner, the demo, the tests): Kill all
// with SIGKILL, Wait, Delete, Shutdown, close the connection, the binary's
// `delete`; and for a pod made through the Sandbox API, StopSandbox and
// ShutdownSandbox. A pod's shared shim stays until its last task is done.
import fs from "node:fs";
import type { CallOptions } from "../ttrpc/service";
import { Code } from "../ttrpc/status";

/** The Task calls teardown makes (a v2 or v3 stub, or a fake in a unit test). */
export interface TeardownTaskClient {
  Kill(req: { id: string; signal: number; all: boolean }, o?: CallOptions): Promise<unknown>;
  Wait(req: { id: string }, o?: CallOptions): Promise<unknown>;
  Delete(req: { id: string }, o?: CallOptions): Promise<unknown>;
  Shutdown(req: { id: string }, o?: CallOptions): Promise<unknown>;
}

export interface TeardownSandboxClient {
  StopSandbox(req: { sandboxId: string; timeoutSecs: number }, o?: CallOptions): Promise<unknown>;
  ShutdownSandbox(req: { sandboxId: string }, o?: CallOptions): Promise<unknown>;
}

/** What containerd holds for one task. */
export interface HeldTask {
  id: string;
  bundle: string;
  /** The shim's address; tasks with the same one share a shim. */
  address?: string;
  /** containerd's Task client; absent while it has no connection to the shim (the task counts as unclean). */
  task?: TeardownTaskClient;
  /** Closes containerd's connection. */
  close(): void;
  /** The shim daemon's pid, when known: a shim alive after its last task is killed (with reapMs). */
  shimPid?: number;
  /**
   * A task of a Sandbox API pod: containerd 2.x sends it no Shutdown and runs no `delete` for it,
   * since the pod's shim ends with the sandbox (teardownSandbox).
   */
  sandboxed?: boolean;
}

export interface HeldSandbox {
  id: string;
  bundle: string;
  address?: string;
  /** containerd's Sandbox client; absent while it has no connection (then only `delete` is left to do). */
  sandbox?: TeardownSandboxClient;
  close(): void;
  shimPid?: number;
}

export interface TeardownOptions {
  /** Deadlines of each call, in ms. */
  callMs?: Partial<Record<"kill" | "wait" | "delete" | "shutdown", number>>;
  /**
   * When the binary's `delete` runs for a shim: after every task (containerd runs it when its
   * connection to a shim closes), or only when something failed on that shim, so that a leak
   * check afterwards still sees what a clean-looking shutdown left.
   */
  shimDelete?: "always" | "unclean";
  /**
   * How long a shim may take to exit after its last task; a shim still alive then is SIGKILLed
   * and reported. Unset: a straggler is left to the caller's leak check.
   */
  reapMs?: number;
}

export interface SandboxTeardownOptions extends Pick<TeardownOptions, "shimDelete" | "reapMs"> {
  /** Deadline of each Sandbox call, in ms. */
  callMs?: number;
  /** Its tasks' teardown went wrong: `delete` runs even with shimDelete "unclean". */
  tasksClean?: boolean;
}

export interface TeardownResult {
  /** Every call answered (Delete may say NotFound) and no connection was missing. */
  clean: boolean;
  /** What went wrong that the caller reports: a failed `delete`, a shim killed. */
  notes: string[];
}

/** The binary contract's `delete` (ShimRunner.delete, or a fake). */
export type ShimDelete = (id: string, bundle: string) => Promise<unknown>;

const DEFAULT_CALL_MS = 15_000;

function sameShim(a: HeldTask, b: HeldTask): boolean {
  return (!!a.address && a.address === b.address) || (!!a.shimPid && a.shimPid === b.shimPid);
}

const answered = (p: Promise<unknown>) => p.then(() => true, () => false);

/** Takes the tasks down in reverse order of creation, as containerd removes a pod's containers before its sandbox. */
export async function teardownTasks(tasks: HeldTask[], shimDelete: ShimDelete, o: TeardownOptions = {}): Promise<TeardownResult> {
  const ms = (k: keyof NonNullable<TeardownOptions["callMs"]>) => ({ timeoutMs: o.callMs?.[k] ?? DEFAULT_CALL_MS });
  const notes: string[] = [];
  const order = [...tasks].reverse();
  const uncleanShims: HeldTask[] = [];
  for (const [i, t] of order.entries()) {
    let clean = !!t.task;
    if (t.task) {
      await answered(t.task.Kill({ id: t.id, signal: 9, all: true }, ms("kill")));
      await answered(t.task.Wait({ id: t.id }, ms("wait")));
      // Already gone is what Delete is for.
      clean = await t.task.Delete({ id: t.id }, ms("delete")).then(() => true, (e: { code?: number }) => e?.code === Code.NotFound);
      if (!t.sandboxed) clean = (await answered(t.task.Shutdown({ id: t.id }, ms("shutdown")))) && clean;
    }
    t.close();
    if (!clean) uncleanShims.push(t);
    if (t.sandboxed) continue;
    // A shared shim keeps serving the tasks still to be taken down.
    const last = !order.slice(i + 1).some((x) => sameShim(x, t));
    const dirty = uncleanShims.some((x) => sameShim(x, t) || x === t);
    if ((o.shimDelete ?? "always") === "always" || (last && dirty)) {
      await shimDelete(t.id, t.bundle).catch((e: Error) => notes.push(`delete ${t.id}: ${e.message}`));
    }
    if (!last) continue;
    if (o.reapMs !== undefined) notes.push(...(await reapShim(t, o.reapMs, "shim", "after Delete, Shutdown and `delete`")));
  }
  return { clean: !uncleanShims.length, notes };
}

/**
 * A Sandbox API pod's end, as containerd 2.x's CRI removes it: StopSandbox,
 * ShutdownSandbox (the shim exits), the connection closed; `delete` when that
 * or its tasks' teardown (`tasksClean`) went wrong, or always.
 */
export async function teardownSandbox(h: HeldSandbox, shimDelete: ShimDelete, o: SandboxTeardownOptions = {}): Promise<TeardownResult> {
  const call = { timeoutMs: o.callMs ?? DEFAULT_CALL_MS };
  const notes: string[] = [];
  // No connection (the shim died and could not be redialled) leaves nothing to call: only the tasks and the reaping can make it unclean.
  let clean = o.tasksClean !== false;
  if (h.sandbox) {
    await answered(h.sandbox.StopSandbox({ sandboxId: h.id, timeoutSecs: 0 }, call));
    clean = (await answered(h.sandbox.ShutdownSandbox({ sandboxId: h.id }, call))) && clean;
  }
  h.close();
  if (o.reapMs !== undefined) {
    const killed = await reapShim(h, o.reapMs, "sandbox shim", "after StopSandbox and ShutdownSandbox");
    notes.push(...killed);
    clean &&= !killed.length;
  }
  if ((o.shimDelete ?? "always") === "always" || !clean) await shimDelete(h.id, h.bundle).catch((e: Error) => notes.push(`delete ${h.id}: ${e.message}`));
  return { clean, notes };
}

/** A shim that outlived its last task is killed and reported; its socket, stale once it is dead, removed as containerd's next `start` would. */
async function reapShim(t: { shimPid?: number; address?: string }, ms: number, what: string, after: string): Promise<string[]> {
  const notes: string[] = [];
  if (!t.shimPid) return notes;
  if (!(await exited(t.shimPid, ms))) {
    notes.push(`${what} ${t.shimPid} still running ${after}: killed`);
    try {
      process.kill(t.shimPid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  const sock = t.address ? socketPath(t.address) : null;
  if (sock && !alive(t.shimPid)) fs.rmSync(sock, { force: true });
  return notes;
}

export function socketPath(address: string): string | null {
  return address.startsWith("unix://") ? address.slice(7) : address.startsWith("/") ? address : null;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie is not alive
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

export async function exited(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise<void>((r) => setTimeout(r, 50));
  }
  return true;
}
