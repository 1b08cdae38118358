// The runtime-v2 event rules: which events, in what order, with what fields
// (docs/contract/events.md).
import { TOPIC_OF_TYPE } from "../event-types";
import type { Check } from "./types";
import type { CheckContext } from "./context";

const SLEEP = ["/bin/sleep", "300"];
const W = { timeoutMs: 15_000 };

/** Fails unless each topic appears exactly once and in this order. */
function expectOrder(ctx: CheckContext, id: string, want: string[]): void {
  const got = ctx.topics(id);
  ctx.observe(`topics`, got.join(" "));
  for (const t of want) {
    const n = got.filter((g) => g === t).length;
    ctx.expect(n === 1, `${t} published ${n} times (events: ${got.join(", ") || "none"})`);
  }
  const idx = want.map((t) => got.indexOf(t));
  for (let i = 1; i < want.length; i++) ctx.expect(idx[i] > idx[i - 1], `${want[i]} came before ${want[i - 1]} (events: ${got.join(", ")})`);
}

export const eventChecks: Check[] = [
  {
    name: "events-oom",
    group: "events",
    rule: "events.oom",
    also: ["exit.signal-128-plus"],
    async run(ctx) {
      // 32 MiB and no swap; the shell doubles a string until the kernel kills it.
      const h = await ctx.running({ args: ["/bin/sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done"], memoryLimit: 32 << 20 });
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, { timeoutMs: 30_000 }));
      ctx.equal("exit_status", w.exitStatus, 137);
      const oom = await ctx.waitEvent(h.id, "/tasks/oom", () => true, 10_000);
      ctx.equal("TaskOOM.container_id", oom.event.containerId, h.id);
      await ctx.settleEvents();
      ctx.equal("TaskOOM events", ctx.topics(h.id).filter((t) => t === "/tasks/oom").length, 1);
    },
  },
  {
    name: "events-init-order",
    group: "events",
    rule: "events.exit-after-start",
    also: ["events.start-after-create", "events.delete-after-exit", "events.once"],
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "sleep 0.2"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      await ctx.ok("Delete", h.task.Delete({ id: h.id }));
      await ctx.waitEvent(h.id, "/tasks/delete");
      await ctx.settleEvents();
      expectOrder(ctx, h.id, ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
    },
  },
  {
    name: "events-start-before-exit-fast",
    group: "events",
    rule: "events.exit-after-start",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      await ctx.waitEvent(h.id, "/tasks/exit");
      await ctx.settleEvents();
      expectOrder(ctx, h.id, ["/tasks/create", "/tasks/start", "/tasks/exit"]);
    },
  },
  {
    name: "events-delete-follows-create-when-never-started",
    group: "events",
    rule: "events.delete-after-exit",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      await ctx.ok("Delete", h.task.Delete({ id: h.id }));
      await ctx.waitEvent(h.id, "/tasks/delete");
      await ctx.settleEvents();
      const got = ctx.topics(h.id);
      // Whether the never-started init's exit is published is not a rule; only its place is.
      ctx.equal("topics (exit aside)", got.filter((t) => t !== "/tasks/exit"), ["/tasks/create", "/tasks/delete"]);
      ctx.expect(got.filter((t) => t === "/tasks/exit").length <= 1 && got.at(-1) === "/tasks/delete", `TaskDelete is not last: ${got.join(", ")}`);
      return got.join(" → ");
    },
  },
  {
    name: "events-exec-order",
    group: "events",
    rule: "events.exec-started-after-added",
    also: ["events.exec-added-after-create", "events.exec-exit-after-started"],
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "ev", ["/bin/true"]);
      await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "ev" }));
      await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "ev" }, W));
      await ctx.waitEvent(h.id, "/tasks/exit", (e) => e.event.id === "ev");
      await ctx.settleEvents();
      expectOrder(ctx, h.id, ["/tasks/create", "/tasks/exec-added(ev)", "/tasks/exec-started(ev)", "/tasks/exit(ev)"]);
    },
  },
  {
    name: "events-create-fields",
    group: "events",
    rule: "events.create-fields",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      const e = (await ctx.waitEvent(h.id, "/tasks/create")).event;
      ctx.equal("TaskCreate", { bundle: e.bundle, stdout: e.io?.stdout, stderr: e.io?.stderr, pid: e.pid }, { bundle: h.bundle, stdout: h.io!.stdout, stderr: h.io!.stderr, pid: h.pid });
    },
  },
  {
    name: "events-exit-matches-wait",
    group: "events",
    rule: "events.exit-fields",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "exit 6"] });
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      const e = (await ctx.waitEvent(h.id, "/tasks/exit")).event;
      ctx.equal("TaskExit", { id: e.id, pid: e.pid, exitStatus: e.exitStatus, exitedAt: e.exitedAt }, { id: h.id, pid: h.pid, exitStatus: 6, exitedAt: w.exitedAt });
    },
  },
  {
    name: "events-exec-fields",
    group: "events",
    rule: "events.exec-fields",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "xf", ["/bin/sh", "-c", "exit 8"]);
      const s = await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "xf" }));
      await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "xf" }, W));
      const started = (await ctx.waitEvent(h.id, "/tasks/exec-started")).event;
      const exit = (await ctx.waitEvent(h.id, "/tasks/exit", (e) => e.event.id === "xf")).event;
      ctx.equal("TaskExecStarted", { execId: started.execId, pid: started.pid }, { execId: "xf", pid: s.pid });
      ctx.equal("exec TaskExit", { pid: exit.pid, exitStatus: exit.exitStatus }, { pid: s.pid, exitStatus: 8 });
    },
  },
  {
    name: "events-delete-fields",
    group: "events",
    rule: "events.delete-fields",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "exit 1"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      const d = await ctx.ok("Delete", h.task.Delete({ id: h.id }));
      const e = (await ctx.waitEvent(h.id, "/tasks/delete")).event;
      // A zero nanos is absent from the wire, and decoders differ on whether they fill it in.
      const at = (t?: { seconds?: unknown; nanos?: number }) => t && { seconds: Number(t.seconds ?? 0), nanos: t.nanos ?? 0 };
      ctx.equal("TaskDelete", { pid: e.pid ?? 0, exitStatus: e.exitStatus ?? 0, exitedAt: at(e.exitedAt) }, { pid: d.pid, exitStatus: d.exitStatus, exitedAt: at(d.exitedAt) });
    },
  },
  {
    name: "events-envelope",
    group: "events",
    rule: "events.envelope",
    also: ["events.forward", "events.timestamp", "events.bare-type-url"],
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      await ctx.waitEvent(h.id, "/tasks/exit");
      const evs = ctx.events(h.id);
      ctx.expect(evs.length >= 3, `only ${evs.length} events`);
      for (const e of evs) {
        ctx.equal(`${e.topic} namespace`, e.namespace, ctx.emu.namespace);
        ctx.equal(`${e.topic} type URL`, TOPIC_OF_TYPE[e.typeUrl], e.topic);
        ctx.expect(Math.abs(e.timestamp - Date.now()) < 120_000, `${e.topic} timestamp ${new Date(e.timestamp).toISOString()} is not about now`);
      }
    },
  },
  {
    name: "events-exit-after-kill-137",
    group: "events",
    rule: "events.exit-fields",
    also: ["exit.signal-128-plus"],
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Kill", h.task.Kill({ id: h.id, signal: 9 }));
      const e = (await ctx.waitEvent(h.id, "/tasks/exit")).event;
      ctx.equal("TaskExit.exit_status", e.exitStatus, 137);
    },
  },
];
