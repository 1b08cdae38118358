// containerd 2.x's Sandbox API (containerd.runtime.sandbox.v1.Sandbox, contract
// §8): what its shim sandbox controller (plugins/sandbox/controller.go) asks
// of a shim when a CRI runtime has sandboxer = "shim", in its order, and the
// errdefs classes it acts on (§2.3): NotFound for an id the shim does not
// serve (Stop and CRI read it as "gone"), AlreadyExists for a second create.
// A shim whose profile serves no Sandbox API (runc's) must say so with
// Unimplemented on every RPC, as a ttrpc server does for a service it lacks:
// containerd then reports the error instead of waiting on a sandbox.
import { Code } from "../../ttrpc/status";
import type { Check } from "./types";
import { exited, sleep, type CheckContext, type SandboxHandle } from "./context";

const W = { timeoutMs: 15_000 };
type Rpc = "CreateSandbox" | "StartSandbox" | "Platform" | "StopSandbox" | "WaitSandbox" | "SandboxStatus" | "PingSandbox" | "ShutdownSandbox" | "SandboxMetrics";
const secs = (t: { seconds: number; nanos: number } | undefined) => (t ? t.seconds + t.nanos / 1e9 : NaN);

/**
 * Whether the profile serves the Sandbox API. If not, checks that these RPCs
 * answer Unimplemented on a task shim's connection (a documented difference) and returns false.
 */
async function served(ctx: CheckContext, rpcs: Rpc[]): Promise<boolean> {
  // What a check sees on one profile has no counterpart on the other: --compare reads it as that difference.
  ctx.profileDependent = "sandbox-api";
  if (ctx.profile.sandboxApi === "served") return true;
  const h = await ctx.task({ args: ["/bin/true"], noCreate: true });
  const sb = h.shim.client.service(ctx.sandboxDef, W);
  for (const rpc of rpcs) {
    const call = (sb[rpc] as (req: { sandboxId: string }) => Promise<unknown>)({ sandboxId: h.id });
    await ctx.fails(`${rpc} on a shim without the Sandbox API`, call, Code.Unimplemented, "sandbox-api");
  }
  return false;
}

const ABSENT = "Unimplemented on every RPC (profile: no Sandbox API)";

export const sandboxChecks: Check[] = [
  {
    name: "sandbox-lifecycle-order",
    group: "sandbox",
    rule: "sandbox.lifecycle-order",
    async run(ctx) {
      if (!(await served(ctx, ["CreateSandbox", "StartSandbox", "SandboxStatus", "Platform", "PingSandbox", "StopSandbox", "WaitSandbox", "ShutdownSandbox"]))) return ABSENT;
      const h = await ctx.sandboxShim();
      const sb = h.sandbox;
      await ctx.ok("CreateSandbox", sb.CreateSandbox(ctx.createSandboxRequest(h)));
      const created = await ctx.ok("SandboxStatus after create", sb.SandboxStatus({ sandboxId: h.id }));
      ctx.equal("state after create", [created.state, created.pid], ["SANDBOX_NOTREADY", 0]);
      const start = await ctx.ok("StartSandbox", sb.StartSandbox({ sandboxId: h.id }));
      ctx.expect(start.pid > 0, "StartSandbox answered pid 0");
      ctx.expect(secs(start.createdAt) > 0, "StartSandbox answered no created_at");
      const ready = await ctx.ok("SandboxStatus", sb.SandboxStatus({ sandboxId: h.id }));
      ctx.equal("status", [ready.sandboxId, ready.state, ready.pid, secs(ready.createdAt)], [h.id, "SANDBOX_READY", start.pid, secs(start.createdAt)]);
      ctx.observe("SandboxStatus → state", ready.state);
      const platform = await ctx.ok("Platform", sb.Platform({ sandboxId: h.id }));
      ctx.equal("Platform os", platform.platform?.os, "linux");
      ctx.expect(platform.platform?.architecture, "Platform has no architecture");
      await ctx.ok("PingSandbox", sb.PingSandbox({ sandboxId: h.id }));
      await ctx.ok("StopSandbox", sb.StopSandbox({ sandboxId: h.id, timeoutSecs: 0 }, W));
      const w = await ctx.ok("WaitSandbox", sb.WaitSandbox({ sandboxId: h.id }, W));
      ctx.expect(secs(w.exitedAt) >= secs(start.createdAt), `exited_at ${secs(w.exitedAt)} before created_at ${secs(start.createdAt)}`);
      const stopped = await ctx.ok("SandboxStatus after stop", sb.SandboxStatus({ sandboxId: h.id }));
      ctx.equal("status after stop", [stopped.state, stopped.pid, secs(stopped.exitedAt)], ["SANDBOX_NOTREADY", 0, secs(w.exitedAt)]);
      await ctx.ok("ShutdownSandbox", sb.ShutdownSandbox({ sandboxId: h.id }, W));
      ctx.expect(await exited(h.shimPid, 10_000), `shim ${h.shimPid} still running 10 s after ShutdownSandbox`);
      return `pid ${start.pid}, exit ${w.exitStatus}`;
    },
  },
  {
    name: "sandbox-unknown-id-notfound",
    group: "sandbox",
    rule: "sandbox.unknown-id",
    async run(ctx) {
      const rpcs: Rpc[] = ["StartSandbox", "Platform", "StopSandbox", "WaitSandbox", "SandboxStatus", "PingSandbox", "ShutdownSandbox", "SandboxMetrics"];
      if (!(await served(ctx, rpcs))) return ABSENT;
      const h = await ctx.sandboxShim({ start: true });
      const other = `${h.id}-other`;
      for (const rpc of rpcs) {
        await ctx.fails(`${rpc} unknown id`, (h.sandbox[rpc] as (req: { sandboxId: string }) => Promise<unknown>)({ sandboxId: other }), Code.NotFound);
      }
      // And the sandbox it serves is untouched.
      const st = await ctx.ok("SandboxStatus", h.sandbox.SandboxStatus({ sandboxId: h.id }));
      ctx.equal("state", st.state, "SANDBOX_READY");
    },
  },
  {
    name: "sandbox-create-twice-alreadyexists",
    group: "sandbox",
    rule: "sandbox.create-twice",
    async run(ctx) {
      if (!(await served(ctx, ["CreateSandbox"]))) return ABSENT;
      const h = await ctx.sandboxShim({ create: true });
      const msg = await ctx.fails("CreateSandbox again", h.sandbox.CreateSandbox(ctx.createSandboxRequest(h)), Code.AlreadyExists);
      const st = await ctx.ok("SandboxStatus", h.sandbox.SandboxStatus({ sandboxId: h.id }));
      ctx.equal("state", [st.state, st.pid], ["SANDBOX_NOTREADY", 0]);
      await ctx.ok("StartSandbox", h.sandbox.StartSandbox({ sandboxId: h.id }));
      return msg;
    },
  },
  {
    name: "sandbox-start-twice-refused",
    group: "sandbox",
    rule: "sandbox.start-twice",
    async run(ctx) {
      if (!(await served(ctx, ["StartSandbox"]))) return ABSENT;
      const h = await ctx.sandboxShim({ start: true });
      const before = await ctx.ok("SandboxStatus", h.sandbox.SandboxStatus({ sandboxId: h.id }));
      const msg = await ctx.fails("StartSandbox again", h.sandbox.StartSandbox({ sandboxId: h.id }), Code.FailedPrecondition);
      const after = await ctx.ok("SandboxStatus", h.sandbox.SandboxStatus({ sandboxId: h.id }));
      ctx.equal("status", [after.state, after.pid], [before.state, before.pid]);
      return msg;
    },
  },
  {
    name: "sandbox-stop-stopped",
    group: "sandbox",
    rule: "sandbox.stop-stopped",
    async run(ctx) {
      if (!(await served(ctx, ["StopSandbox"]))) return ABSENT;
      const h = await ctx.sandboxShim({ start: true });
      await ctx.ok("StopSandbox", h.sandbox.StopSandbox({ sandboxId: h.id }, W));
      const first = await ctx.ok("WaitSandbox", h.sandbox.WaitSandbox({ sandboxId: h.id }, W));
      const again = await ctx.outcome("StopSandbox again", h.sandbox.StopSandbox({ sandboxId: h.id }, W));
      ctx.expect(again.ok || again.code === Code.NotFound, `StopSandbox of a stopped sandbox: want OK or NotFound, got ${again.ok ? "OK" : `${again.code}: ${again.message}`}`);
      const st = await ctx.ok("SandboxStatus", h.sandbox.SandboxStatus({ sandboxId: h.id }));
      ctx.equal("status", [st.state, secs(st.exitedAt)], ["SANDBOX_NOTREADY", secs(first.exitedAt)]);
      const w = await ctx.ok("WaitSandbox", h.sandbox.WaitSandbox({ sandboxId: h.id }, W));
      ctx.equal("exit", [w.exitStatus, secs(w.exitedAt)], [first.exitStatus, secs(first.exitedAt)]);
      return again.ok ? "OK" : "NotFound";
    },
  },
  {
    name: "sandbox-wait-after-exit",
    group: "sandbox",
    rule: "sandbox.wait-after-exit",
    async run(ctx) {
      if (!(await served(ctx, ["WaitSandbox"]))) return ABSENT;
      const h = await ctx.sandboxShim({ start: true });
      let settled = false;
      const waiting = h.sandbox.WaitSandbox({ sandboxId: h.id }, { timeoutMs: 30_000 }).finally(() => (settled = true));
      await sleep(300);
      ctx.expect(!settled, "WaitSandbox returned while the sandbox was running");
      await ctx.ok("StopSandbox", h.sandbox.StopSandbox({ sandboxId: h.id }, W));
      const w = await ctx.ok("WaitSandbox (waiting)", waiting);
      const t0 = Date.now();
      const again = await ctx.ok("WaitSandbox after exit", h.sandbox.WaitSandbox({ sandboxId: h.id }, W));
      ctx.expect(Date.now() - t0 < 2_000, `WaitSandbox after exit took ${Date.now() - t0} ms`);
      ctx.equal("exit", [again.exitStatus, secs(again.exitedAt)], [w.exitStatus, secs(w.exitedAt)]);
      return `exit ${w.exitStatus}`;
    },
  },
  {
    name: "sandbox-metrics",
    group: "sandbox",
    rule: "sandbox.metrics",
    async run(ctx) {
      if (!(await served(ctx, ["SandboxMetrics"]))) return ABSENT;
      const h = await ctx.sandboxShim({ start: true });
      const m = await ctx.ok("SandboxMetrics", h.sandbox.SandboxMetrics({ sandboxId: h.id }));
      ctx.equal("metrics id", m.metrics?.id, h.id);
      ctx.expect(/^io\.containerd\.cgroups\.v[12]\.Metrics$/.test(m.metrics?.data?.typeUrl ?? ""), `metrics type URL ${JSON.stringify(m.metrics?.data?.typeUrl)}`);
      ctx.expect((m.metrics?.data?.value.length ?? 0) > 0, "empty metrics");
    },
  },
  {
    name: "sandbox-failed-create-shutdown",
    group: "sandbox",
    rule: "sandbox.failed-create-shutdown",
    async run(ctx) {
      if (!(await served(ctx, ["CreateSandbox", "ShutdownSandbox"]))) return ABSENT;
      const h: SandboxHandle = await ctx.sandboxShim();
      const bad = { ...ctx.createSandboxRequest(h), options: { typeUrl: "example.v1.NotAPod", value: Buffer.from("x") } };
      const msg = await ctx.fails("CreateSandbox with options that are no pod config", h.sandbox.CreateSandbox(bad), Code.InvalidArgument);
      await ctx.ok("ShutdownSandbox", h.sandbox.ShutdownSandbox({ sandboxId: h.id }, W));
      ctx.expect(await exited(h.shimPid, 10_000), `shim ${h.shimPid} still running 10 s after ShutdownSandbox`);
      return msg;
    },
  },
];
