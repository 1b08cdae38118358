// Pids: what the shim lists for a container (docs/contract/task-api.md); the pid
// values are the one documented difference here (profile.pids).
import { ProcessDetails } from "../../gen/containerd.runc.v1";
import type { Check } from "./types";
import { sleep } from "./context";

const SLEEP = ["/bin/sleep", "300"];

export const pidsChecks: Check[] = [
  {
    name: "pids-lists-init",
    group: "pids",
    rule: "pids.init",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      const p = await ctx.ok("Pids", h.task.Pids({ id: h.id }));
      ctx.observe("process count", p.processes.length);
      ctx.equal("pids", p.processes.map((x) => x.pid), [h.pid]);
      ctx.observe("pid is the task's", p.processes[0].pid === h.pid);
      ctx.observe("pid kind", ctx.profile.pids, ctx.profile.pids === "host" ? undefined : "pids");
    },
  },
  {
    name: "pids-counts-execs",
    group: "pids",
    rule: "pids.execs",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.exec(h, "px", SLEEP);
      const s = await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "px" }));
      await sleep(100);
      const p = await ctx.ok("Pids", h.task.Pids({ id: h.id }));
      ctx.observe("process count", p.processes.length);
      ctx.equal("process count", p.processes.length, 2);
      const pids = p.processes.map((x) => x.pid).sort();
      ctx.equal("pids", pids, [h.pid, s.pid].sort());
      const tagged = p.processes.find((x) => x.pid === s.pid && x.info)?.info;
      ctx.expect(tagged?.typeUrl === "containerd.runc.v1.ProcessDetails", `the exec's entry has no ProcessDetails (info ${JSON.stringify(tagged?.typeUrl)})`);
      ctx.equal("ProcessDetails.exec_id", ProcessDetails.decode(tagged!.value).execId, "px");
      if (ctx.profile.pids === "agent") ctx.equal("agent pid for both", s.pid, h.pid);
      ctx.observe("exec pid is the task's", s.pid === h.pid, ctx.profile.pids === "agent" ? "pids" : undefined);
    },
  },
];
