// The rest of the Task API: Checkpoint (a documented difference), Stats,
// Update (contract §3).
import { Code } from "../../ttrpc/status";
import { CONTRACT, type Check } from "./types";

const SLEEP = ["/bin/sleep", "300"];
const r = (s: string) => `${CONTRACT} ${s}`;
const RESOURCES_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

export const apiChecks: Check[] = [
  {
    name: "checkpoint-by-profile",
    group: "api",
    rule: r("§2.3 Unsupported RPCs answer Unimplemented; runc's shim attempts Checkpoint (profile checkpoint)"),
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
    rule: r("§3 StatsResponse: stats is an io.containerd.cgroups.v1/v2.Metrics Any (CRI decodes it with typeurl)"),
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
    rule: r("§3 UpdateTaskRequest: resources is JSON LinuxResources; a valid update of a running task succeeds"),
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Update", h.task.Update({ id: h.id, resources: { typeUrl: RESOURCES_URL, value: Buffer.from(JSON.stringify({ memory: { limit: 64 << 20 } })) } }));
    },
  },
];
