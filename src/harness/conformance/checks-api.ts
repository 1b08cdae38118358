// The rest of the Task API: Checkpoint (a documented difference), Stats,
// Update (docs/contract/task-api.md).
import { Code } from "../../ttrpc/status";
import type { Check } from "./types";

const SLEEP = ["/bin/sleep", "300"];
const RESOURCES_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

export const apiChecks: Check[] = [
  {
    name: "checkpoint-by-profile",
    group: "api",
    rule: "checkpoint.optional",
    also: ["task.unimplemented"],
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      const o = await ctx.outcome("Checkpoint", h.task.Checkpoint({ id: h.id, path: `${ctx.emu.dir}/ckpt-${h.id}` }, { timeoutMs: 15_000 }), "checkpoint");
      if (ctx.profile.checkpoint === "unimplemented") {
        ctx.expect(!o.ok && o.code === Code.Unimplemented, `want Unimplemented, got ${o.ok ? "OK" : `${o.code}: ${o.message}`}`);
        return "Unimplemented (profile)";
      }
      ctx.expect(o.ok || o.code !== Code.Unimplemented, "Checkpoint answered Unimplemented, but the profile says it is implemented");
      return o.ok ? "checkpointed" : `attempted: ${o.message.slice(0, 120)}`;
    },
  },
  {
    name: "stats-cgroup-metrics",
    group: "api",
    rule: "stats.metrics-any",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      const s = await ctx.ok("Stats", h.task.Stats({ id: h.id }));
      ctx.expect(/^io\.containerd\.cgroups\.v[12]\.Metrics$/.test(s.stats?.typeUrl ?? ""), `Stats type URL ${JSON.stringify(s.stats?.typeUrl)}`);
      ctx.observe("stats type", s.stats!.typeUrl);
      ctx.expect(s.stats!.value.length > 0, "empty metrics");
    },
  },
  {
    name: "update-resources",
    group: "api",
    rule: "update.resources",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Update", h.task.Update({ id: h.id, resources: { typeUrl: RESOURCES_URL, value: Buffer.from(JSON.stringify({ memory: { limit: 64 << 20 } })) } }));
    },
  },
];
