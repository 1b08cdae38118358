// ctr as a user runs it: in a terminal when it needs one, with `ctr events`
// captured beside, and the output normalised so two runtimes can be compared.
import fs from "node:fs";
import tty from "node:tty";
import { spawn, type ChildProcess } from "node:child_process";
import type { Containerd } from "../../src/harness/containerd";
import { native } from "../../src/native";

/** Runs ctr with a pty of the given size as its stdio (ctr -t insists on a console). */
export async function ctrInTerminal(c: Containerd, args: string[], rows: number, cols: number, timeoutMs = 60_000): Promise<{ code: number | null; out: string }> {
  const p = native().openpty();
  native().setWinsize(p.master, rows, cols);
  const child = spawn("ctr", ["--address", c.address, ...c.ctrArgs(args)], { stdio: [p.slave, p.slave, p.slave], env: c.env(), detached: true });
  fs.closeSync(p.slave);
  const m = new tty.ReadStream(p.master);
  let out = "";
  m.on("data", (d) => (out += d));
  m.on("error", () => {});
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code: number | null = await new Promise((r) => child.on("exit", (x) => r(x)));
  clearTimeout(timer);
  await new Promise((r) => setTimeout(r, 100));
  m.destroy();
  return { code, out };
}

export interface CtrEvent {
  topic: string;
  payload: Record<string, any>;
}

/** `ctr events` in the background; lines are parsed as they come. */
export class EventWatch {
  private readonly child: ChildProcess;
  private buf = "";
  readonly events: CtrEvent[] = [];

  constructor(c: Containerd) {
    this.child = spawn("ctr", ["--address", c.address, "events"], { env: c.env() });
    this.child.stdout!.on("data", (d) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        // <date> <time> <tz> <namespace> <topic> <json>
        const m = /\s(\/[a-z/-]+)\s+(\{.*\})\s*$/.exec(line);
        if (m) this.events.push({ topic: m[1], payload: JSON.parse(m[2]) });
      }
    });
  }

  /** Gives ctr a moment to subscribe before anything happens. */
  ready(): Promise<void> {
    return new Promise((r) => setTimeout(r, 300));
  }

  forContainer(id: string): CtrEvent[] {
    return this.events.filter((e) => e.payload.container_id === id);
  }

  async waitFor(pred: (e: CtrEvent) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.events.some(pred)) {
      if (Date.now() > deadline) throw new Error(`event not seen; got ${this.events.map((e) => e.topic).join(", ")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  stop(): void {
    this.child.kill();
  }
}

/** An event with ids, pids, times and paths replaced by placeholders. */
export function normalise(e: CtrEvent, id: string): string {
  const p: Record<string, any> = {};
  for (const [k, v] of Object.entries(e.payload)) {
    if (k === "pid") p[k] = "<pid>";
    else if (k === "exited_at") p[k] = "<time>";
    else if (k === "bundle") p[k] = "<bundle>";
    else if (k === "io") p[k] = Object.fromEntries(Object.entries(v as object).map(([a, b]) => [a, typeof b === "string" && b ? "<fifo>" : b]));
    else if (k === "rootfs") p[k] = "<rootfs>";
    else if (v === id) p[k] = "<id>";
    else p[k] = v;
  }
  return `${e.topic} ${JSON.stringify(p, Object.keys(p).sort())}`;
}

/** Removes a task and container whatever state they are in (for finally blocks). */
export async function forceRemove(c: Containerd, id: string): Promise<void> {
  await c.ctr(["task", "kill", "-s", "SIGKILL", id]).catch(() => undefined);
  for (let i = 0; i < 50; i++) {
    const ls = await c.ctr(["task", "ls"]);
    if (!new RegExp(`^${id}\\s+\\d+\\s+(RUNNING|PAUSED|CREATED)`, "m").test(ls.out)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await c.ctr(["task", "delete", id]).catch(() => undefined);
  await c.ctr(["container", "rm", id]).catch(() => undefined);
}
