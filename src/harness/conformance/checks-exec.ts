// Exec processes: their own state machine, ids, stdio and exit codes
// (docs/contract/task-api.md, "Exec").
import { Code } from "../../ttrpc/status";
import type { Check } from "./types";
import { sleep } from "./context";
import { Status_names } from "../../gen/containerd.v1.types";

const SLEEP = ["/bin/sleep", "300"];
const W = { timeoutMs: 15_000 };

export const execChecks: Check[] = [
  {
    name: "exec-lifecycle-states",
    group: "exec",
    rule: "exec.lifecycle",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "e1", ["/bin/sh", "-c", "sleep 1; exit 4"]);
      const s1 = await ctx.ok("State exec created", h.task.State({ id: h.id, execId: "e1" }));
      ctx.equal("exec State after Exec", [s1.id, Status_names[s1.status]], ["e1", "CREATED"]);
      const started = await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "e1" }));
      ctx.expect(started.pid > 0, "Start of the exec returned pid 0");
      const s2 = await ctx.ok("State exec running", h.task.State({ id: h.id, execId: "e1" }));
      ctx.equal("exec status after Start", Status_names[s2.status], "RUNNING");
      const w = await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "e1" }, W));
      ctx.equal("exec exit_status", w.exitStatus, 4);
      const s3 = await ctx.ok("State exec stopped", h.task.State({ id: h.id, execId: "e1" }));
      ctx.equal("exec State after exit", [Status_names[s3.status], s3.exitStatus], ["STOPPED", 4]);
      const init = await ctx.ok("State init", h.task.State({ id: h.id }));
      ctx.equal("init status after exec exit", Status_names[init.status], "RUNNING");
    },
  },
  {
    name: "exec-duplicate-id-alreadyexists",
    group: "exec",
    rule: "exec.duplicate-id",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "d", SLEEP);
      return ctx.fails("Exec same id", ctx.exec(h, "d", ["/bin/true"]), Code.AlreadyExists);
    },
  },
  {
    name: "exec-delete-running-refused",
    group: "exec",
    rule: "delete.not-running",
    also: ["errors.illegal-move"],
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "r", SLEEP);
      await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "r" }));
      return ctx.illegal("Delete running exec", h.task.Delete({ id: h.id, execId: "r" }));
    },
  },
  {
    name: "exec-delete-response-and-gone",
    group: "exec",
    rule: "exec.delete-removes",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "g", ["/bin/sh", "-c", "exit 9"]);
      const s = await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "g" }));
      await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "g" }, W));
      const d = await ctx.ok("Delete exec", h.task.Delete({ id: h.id, execId: "g" }));
      ctx.equal("Delete exec (pid, exit_status)", [d.pid, d.exitStatus], [s.pid, 9]);
      await ctx.fails("State deleted exec", h.task.State({ id: h.id, execId: "g" }), Code.NotFound);
      await ctx.fails("Wait deleted exec", h.task.Wait({ id: h.id, execId: "g" }, { timeoutMs: 3_000 }), Code.NotFound);
      const init = await ctx.ok("State init", h.task.State({ id: h.id }));
      ctx.equal("init status", Status_names[init.status], "RUNNING");
    },
  },
  {
    name: "exec-unknown-notfound",
    group: "exec",
    rule: "exec.unknown-id",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.fails("State unknown exec", h.task.State({ id: h.id, execId: "nope" }), Code.NotFound);
      await ctx.fails("Wait unknown exec", h.task.Wait({ id: h.id, execId: "nope" }, { timeoutMs: 3_000 }), Code.NotFound);
      await ctx.fails("Start unknown exec", h.task.Start({ id: h.id, execId: "nope" }), Code.NotFound);
      await ctx.fails("Delete unknown exec", h.task.Delete({ id: h.id, execId: "nope" }), Code.NotFound);
    },
  },
  {
    name: "exec-own-stdio",
    group: "exec",
    rule: "stdio.exec-own",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      const io = await ctx.exec(h, "o", ["/bin/sh", "-c", "echo exec-out; echo exec-err >&2"], { stdio: true });
      await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "o" }));
      await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "o" }, W));
      await io!.drained(100);
      ctx.equal("exec stdout", io!.out(), "exec-out\n");
      ctx.equal("exec stderr", io!.err(), "exec-err\n");
      await h.io!.drained(50);
      ctx.equal("init stdout", h.io!.out(), "");
      const st = await ctx.ok("State exec", h.task.State({ id: h.id, execId: "o" }));
      ctx.equal("exec State stdio", [st.stdout, st.stderr], [io!.stdout, io!.stderr]);
    },
  },
  {
    name: "exec-stdin-closeio",
    group: "exec",
    rule: "stdio.exec-stdin",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      const io = await ctx.exec(h, "in", ["/bin/cat"], { stdio: true, stdin: true });
      await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "in" }));
      io!.write("to the exec\n");
      await sleep(200);
      io!.closeStdin();
      await ctx.ok("CloseIO exec stdin", h.task.CloseIO({ id: h.id, execId: "in", stdin: true }));
      const w = await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "in" }, W));
      ctx.equal("cat exit_status", w.exitStatus, 0);
      await io!.drained(100);
      ctx.equal("exec stdout", io!.out(), "to the exec\n");
    },
  },
  {
    name: "exec-paused-state",
    group: "exec",
    rule: "state.exec-paused",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "p", SLEEP);
      await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "p" }));
      await ctx.ok("Pause", h.task.Pause({ id: h.id }));
      const s = await ctx.ok("State exec", h.task.State({ id: h.id, execId: "p" }));
      ctx.equal("exec status while paused", Status_names[s.status], "PAUSED");
      await ctx.ok("Resume", h.task.Resume({ id: h.id }));
      await sleep(50);
      const s2 = await ctx.ok("State exec", h.task.State({ id: h.id, execId: "p" }));
      ctx.equal("exec status after Resume", Status_names[s2.status], "RUNNING");
    },
  },
];
