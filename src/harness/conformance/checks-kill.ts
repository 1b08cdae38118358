// Kill semantics: unknown ids, exited processes, `all`, execs not started
// (contract §3.2 and §2.3: what containerd tolerates).
import { Code } from "../../ttrpc/status";
import { CONTRACT, type Check } from "./types";
import { sleep } from "./context";

const SLEEP = ["/bin/sleep", "300"];
const r = (s: string) => `${CONTRACT} ${s}`;
const W = { timeoutMs: 15_000 };

export const killChecks: Check[] = [
  {
    name: "kill-unknown-container-notfound",
    group: "kill",
    rule: r("§3.2: Kill of an unknown container id → NotFound"),
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      return ctx.fails("Kill unknown id", h.task.Kill({ id: "nosuch", signal: 9 }), Code.NotFound);
    },
  },
  {
    name: "kill-unknown-exec-notfound",
    group: "kill",
    rule: r("§3.2: Kill of an unknown exec id → NotFound"),
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      return ctx.fails("Kill unknown exec", h.task.Kill({ id: h.id, execId: "nosuch", signal: 9 }), Code.NotFound);
    },
  },
  {
    name: "kill-exited-init-notfound",
    group: "kill",
    rule: r("§3.2: Kill of an init that already exited → NotFound \"process already finished\""),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      return ctx.fails("Kill exited init", h.task.Kill({ id: h.id, signal: 9 }), Code.NotFound, undefined, /process already finished/);
    },
  },
  {
    name: "kill-all-after-exit-ok",
    group: "kill",
    rule: r("§3.2: Kill with all=true of an exited init → OK"),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      await ctx.ok("Kill all after exit", h.task.Kill({ id: h.id, signal: 9, all: true }));
    },
  },
  {
    name: "kill-all-reaches-execs",
    group: "kill",
    rule: r("§3.2 Kill: all=true signals every process of the container (runc kill --all), execs included"),
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
    rule: r("§3.2: Kill of an exec that was added but not started → FailedPrecondition \"process not created\""),
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "n", SLEEP);
      return ctx.fails("Kill created exec", h.task.Kill({ id: h.id, execId: "n", signal: 9 }), Code.FailedPrecondition);
    },
  },
  {
    name: "kill-exited-exec-notfound",
    group: "kill",
    rule: r("§3.2: Kill of an exec that exited → NotFound"),
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
    rule: r("§3.2 Kill: a created (not started) init can be killed; it is then STOPPED with 137 and Wait returns"),
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      await ctx.ok("Kill created init", h.task.Kill({ id: h.id, signal: 9 }));
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit_status", w.exitStatus, 137);
    },
  },
];
