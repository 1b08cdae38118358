// Pause and Resume: states, events, and what may not be done while paused
// (contract §3.2, §4.2).
import { CONTRACT, type Check } from "./types";
import { STATUS_NAME } from "./context";

const SLEEP = ["/bin/sleep", "300"];
const r = (s: string) => `${CONTRACT} ${s}`;
const W = { timeoutMs: 15_000 };

export const pauseChecks: Check[] = [
  {
    name: "pause-resume-states",
    group: "pause",
    rule: r("§3.2 State: Pause → PAUSED, Resume → RUNNING"),
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Pause", h.task.Pause({ id: h.id }));
      ctx.equal("status after Pause", STATUS_NAME[(await ctx.ok("State", h.task.State({ id: h.id }))).status], "PAUSED");
      await ctx.ok("Resume", h.task.Resume({ id: h.id }));
      ctx.equal("status after Resume", STATUS_NAME[(await ctx.ok("State", h.task.State({ id: h.id }))).status], "RUNNING");
    },
  },
  {
    name: "pause-resume-events",
    group: "pause",
    rule: r("§3.2, §4.3 SHOULD: Pause/Resume publish TaskPaused then TaskResumed"),
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Pause", h.task.Pause({ id: h.id }));
      await ctx.waitEvent(h.id, "/tasks/paused");
      await ctx.ok("Resume", h.task.Resume({ id: h.id }));
      await ctx.waitEvent(h.id, "/tasks/resumed");
      const t = ctx.topics(h.id);
      ctx.equal("topics", t, ["/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/resumed"]);
    },
  },
  {
    name: "delete-paused-refused",
    group: "pause",
    rule: r("§3.2 Delete: a paused process cannot be deleted (runc: Unknown; profile: illegalStateCode)"),
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Pause", h.task.Pause({ id: h.id }));
      const d = await ctx.illegal("Delete paused", h.task.Delete({ id: h.id }));
      await ctx.ok("Resume", h.task.Resume({ id: h.id }));
      return d;
    },
  },
  {
    name: "pause-stopped-refused",
    group: "pause",
    rule: r("§3.2 state machine: Pause of a stopped task is an illegal state move (runc: Unknown; profile: illegalStateCode)"),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      return ctx.illegal("Pause stopped", h.task.Pause({ id: h.id }));
    },
  },
  {
    name: "kill-paused-then-exit",
    group: "pause",
    rule: r("§3.2 Exit codes: SIGKILL reaches a paused task; it exits 137 and Wait returns"),
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Pause", h.task.Pause({ id: h.id }));
      await ctx.ok("Kill SIGKILL", h.task.Kill({ id: h.id, signal: 9 }));
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit_status", w.exitStatus, 137);
    },
  },
];
