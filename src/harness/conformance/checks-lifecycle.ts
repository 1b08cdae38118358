// The init process's life through the Task API: Create, State, Start, Wait,
// Delete, and the state machine's answers to illegal moves (docs/contract/task-api.md).
import { Code } from "../../ttrpc/status";
import type { Check } from "./types";
import { GO_ZERO_SECONDS, sleep } from "./context";
import { Status, Status_names } from "../../gen/containerd.v1.types";

const SLEEP = ["/bin/sleep", "300"];
const W = { timeoutMs: 15_000 };

export const lifecycleChecks: Check[] = [
  {
    name: "create-state-created",
    group: "lifecycle",
    rule: "create.state-created",
    also: ["exit.not-exited-time"],
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      ctx.expect(h.pid > 0, "Create returned pid 0");
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      ctx.equal("status", Status_names[st.status], "CREATED");
      ctx.equal("pid", st.pid, h.pid);
      ctx.equal("exited_at.seconds", st.exitedAt?.seconds, GO_ZERO_SECONDS);
    },
  },
  {
    name: "state-echoes-task",
    group: "lifecycle",
    rule: "state.echoes-create",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      ctx.equal("id", st.id, h.id);
      ctx.equal("bundle", st.bundle, h.bundle);
      ctx.equal("stdout", st.stdout, h.io!.stdout);
      ctx.equal("stderr", st.stderr, h.io!.stderr);
      ctx.equal("terminal", st.terminal, false);
    },
  },
  {
    name: "start-running",
    group: "lifecycle",
    rule: "start.running",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      const s = await ctx.ok("Start", h.task.Start({ id: h.id }));
      ctx.equal("Start pid", s.pid, h.pid);
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      ctx.equal("status", Status_names[st.status], "RUNNING");
    },
  },
  {
    name: "start-twice-refused",
    group: "lifecycle",
    rule: "start.not-twice",
    also: ["errors.illegal-move"],
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      return ctx.illegal("Start again", h.task.Start({ id: h.id }));
    },
  },
  {
    name: "exit-status-normal",
    group: "lifecycle",
    rule: "exit.normal-status",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "exit 3"] });
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("Wait exit_status", w.exitStatus, 3);
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      ctx.equal("State", [Status_names[st.status], st.exitStatus], ["STOPPED", 3]);
    },
  },
  {
    name: "exit-status-sigkill-137",
    group: "lifecycle",
    rule: "exit.signal-128-plus",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Kill SIGKILL", h.task.Kill({ id: h.id, signal: 9 }));
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit_status", w.exitStatus, 137);
    },
  },
  {
    name: "exit-status-sigterm-143",
    group: "lifecycle",
    rule: "exit.signal-128-plus",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "t", SLEEP);
      await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "t" }));
      await sleep(100);
      await ctx.ok("Kill exec SIGTERM", h.task.Kill({ id: h.id, execId: "t", signal: 15 }));
      const w = await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "t" }, W));
      ctx.equal("exit_status", w.exitStatus, 143);
    },
  },
  {
    name: "wait-after-exit-returns-at-once",
    group: "lifecycle",
    rule: "wait.after-exit",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "exit 5"] });
      const w1 = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      const t0 = performance.now();
      const w2 = await ctx.ok("Wait again", h.task.Wait({ id: h.id }, { timeoutMs: 2_000 }));
      ctx.equal("second Wait", w2, w1);
      return `second Wait answered in ${Math.round(performance.now() - t0)} ms`;
    },
  },
  {
    name: "wait-concurrent-with-other-calls",
    group: "lifecycle",
    rule: "wire.concurrent-calls",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      let waited = false;
      const wait = h.task.Wait({ id: h.id }, W).then((w) => ((waited = true), w));
      await sleep(100);
      const st = await ctx.ok("State during Wait", h.task.State({ id: h.id }, { timeoutMs: 3_000 }));
      ctx.equal("status during Wait", Status_names[st.status], "RUNNING");
      ctx.expect(!waited, "Wait returned while the task was running");
      await ctx.ok("Kill during Wait", h.task.Kill({ id: h.id, signal: 9 }, { timeoutMs: 3_000 }));
      const w = await wait;
      ctx.equal("Wait exit_status", w.exitStatus, 137);
    },
  },
  {
    name: "delete-running-refused",
    group: "lifecycle",
    rule: "delete.not-running",
    also: ["errors.illegal-move"],
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      const d = await ctx.illegal("Delete running", h.task.Delete({ id: h.id }));
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      ctx.equal("status after refused Delete", Status_names[st.status], "RUNNING");
      return d;
    },
  },
  {
    name: "delete-created-task",
    group: "lifecycle",
    rule: "delete.created",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      const d = await ctx.ok("Delete created", h.task.Delete({ id: h.id }));
      ctx.equal("Delete pid", d.pid, h.pid);
      await ctx.fails("State after Delete", h.task.State({ id: h.id }), Code.NotFound);
    },
  },
  {
    name: "delete-response-matches-wait",
    group: "lifecycle",
    rule: "delete.response",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "exit 7"] });
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      const d = await ctx.ok("Delete", h.task.Delete({ id: h.id }));
      ctx.equal("Delete", { pid: d.pid, exitStatus: d.exitStatus, exitedAt: d.exitedAt }, { pid: h.pid, exitStatus: 7, exitedAt: w.exitedAt });
    },
  },
  {
    name: "state-after-delete-notfound",
    group: "lifecycle",
    rule: "delete.then-gone",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      await ctx.ok("Delete", h.task.Delete({ id: h.id }));
      await ctx.fails("State after Delete", h.task.State({ id: h.id }), Code.NotFound);
      await ctx.fails("Delete again", h.task.Delete({ id: h.id }), Code.NotFound);
      await ctx.fails("Wait after Delete", h.task.Wait({ id: h.id }, { timeoutMs: 3_000 }), Code.NotFound);
      await ctx.fails("Kill after Delete", h.task.Kill({ id: h.id, signal: 9 }), Code.NotFound);
    },
  },
  {
    name: "unknown-container-notfound",
    group: "lifecycle",
    rule: "task.unknown-container",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      await ctx.fails("State unknown", h.task.State({ id: "nosuch" }), Code.NotFound);
      await ctx.fails("Start unknown", h.task.Start({ id: "nosuch" }), Code.NotFound);
      await ctx.fails("Delete unknown", h.task.Delete({ id: "nosuch" }), Code.NotFound);
      await ctx.fails("Wait unknown", h.task.Wait({ id: "nosuch" }, { timeoutMs: 3_000 }), Code.NotFound);
    },
  },
  {
    name: "exited-at-set-on-exit",
    group: "lifecycle",
    rule: "exit.exited-at",
    async run(ctx) {
      const before = Date.now() / 1000 - 60;
      const h = await ctx.running({ args: ["/bin/true"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      const s = st.exitedAt?.seconds ?? 0;
      ctx.expect(s > before && s < Date.now() / 1000 + 60, `exited_at ${s} is not about now`);
      ctx.equal("status", Status_names[st.status], "STOPPED");
      ctx.observe("status", Status.STOPPED);
    },
  },
];
