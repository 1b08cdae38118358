// Pause and Resume: states, events, and what may not be done while paused
// (docs/contract/task-api.md, events.md).
import type { Check } from "./types";
import { Status_names } from "../../gen/containerd.v1.types";

const SLEEP = ["/bin/sleep", "300"];
const W = { timeoutMs: 15_000 };

export const pauseChecks: Check[] = [
  {
    name: "pause-resume-states",
    group: "pause",
    rule: "pause.states",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Pause", h.task.Pause({ id: h.id }));
      ctx.equal("status after Pause", Status_names[(await ctx.ok("State", h.task.State({ id: h.id }))).status], "PAUSED");
      await ctx.ok("Resume", h.task.Resume({ id: h.id }));
      ctx.equal("status after Resume", Status_names[(await ctx.ok("State", h.task.State({ id: h.id }))).status], "RUNNING");
    },
  },
  {
    name: "pause-resume-events",
    group: "pause",
    rule: "events.paused-resumed",
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
    rule: "delete.not-paused",
    also: ["errors.illegal-move"],
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
    rule: "pause.not-stopped",
    also: ["errors.illegal-move"],
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      return ctx.illegal("Pause stopped", h.task.Pause({ id: h.id }));
    },
  },
  {
    name: "kill-paused-then-exit",
    group: "pause",
    rule: "kill.paused",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Pause", h.task.Pause({ id: h.id }));
      await ctx.ok("Kill SIGKILL", h.task.Kill({ id: h.id, signal: 9 }));
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit_status", w.exitStatus, 137);
    },
  },
];
