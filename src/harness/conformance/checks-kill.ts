// Kill semantics: unknown ids, exited processes, `all`, execs not started
// (docs/contract/task-api.md, "Kill"; wire.md for what containerd tolerates).
import { Code } from "../../ttrpc/status";
import type { Check } from "./types";
import { sleep } from "./context";

const SLEEP = ["/bin/sleep", "300"];
const W = { timeoutMs: 15_000 };

export const killChecks: Check[] = [
  {
    name: "kill-unknown-container-notfound",
    group: "kill",
    rule: "kill.unknown-container",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      return ctx.fails("Kill unknown id", h.task.Kill({ id: "nosuch", signal: 9 }), Code.NotFound);
    },
  },
  {
    name: "kill-unknown-exec-notfound",
    group: "kill",
    rule: "kill.unknown-exec",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      return ctx.fails("Kill unknown exec", h.task.Kill({ id: h.id, execId: "nosuch", signal: 9 }), Code.NotFound);
    },
  },
  {
    name: "kill-exited-init-notfound",
    group: "kill",
    rule: "kill.exited-init",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      return ctx.fails("Kill exited init", h.task.Kill({ id: h.id, signal: 9 }), Code.NotFound, undefined, /process already finished/);
    },
  },
  {
    name: "kill-all-after-exit-ok",
    group: "kill",
    rule: "kill.all-after-exit",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      await ctx.ok("Kill all after exit", h.task.Kill({ id: h.id, signal: 9, all: true }));
    },
  },
  {
    name: "kill-all-reaches-execs",
    group: "kill",
    rule: "kill.all-reaches-execs",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "x", SLEEP);
      await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "x" }));
      await sleep(100);
      await ctx.ok("Kill all", h.task.Kill({ id: h.id, signal: 9, all: true }));
      const we = await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "x" }, W));
      const wi = await ctx.ok("Wait init", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit statuses (exec, init)", [we.exitStatus, wi.exitStatus], [137, 137]);
    },
  },
  {
    name: "kill-exec-not-started-failedprecondition",
    group: "kill",
    rule: "kill.exec-not-started",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "n", SLEEP);
      return ctx.fails("Kill created exec", h.task.Kill({ id: h.id, execId: "n", signal: 9 }), Code.FailedPrecondition);
    },
  },
  {
    name: "kill-exited-exec-notfound",
    group: "kill",
    rule: "kill.exited-exec",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "e", ["/bin/true"]);
      await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "e" }));
      await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "e" }, W));
      return ctx.fails("Kill exited exec", h.task.Kill({ id: h.id, execId: "e", signal: 9 }), Code.NotFound);
    },
  },
  {
    name: "kill-created-init",
    group: "kill",
    rule: "kill.created-init",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      await ctx.ok("Kill created init", h.task.Kill({ id: h.id, signal: 9 }));
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit_status", w.exitStatus, 137);
    },
  },
];
