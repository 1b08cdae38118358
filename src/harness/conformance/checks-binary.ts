// The shim binary contract: `start`, the daemon it leaves, the socket, the
// bundle files, Shutdown and `delete` (docs/contract/binary.md).
import fs from "node:fs";
import { Code } from "../../ttrpc/status";
import type { Check } from "./types";
import { alive, exited, socketPath, sleep } from "./context";
import { Status_names } from "../../gen/containerd.v1.types";

const SLEEP = ["/bin/sleep", "300"];

export const binaryChecks: Check[] = [
  {
    name: "start-prints-unix-address",
    group: "binary",
    rule: "binary.start-prints-address",
    also: ["binary.start-stderr-silent", "binary.start-listening", "binary.flags", "binary.bootstrap-json", "binary.grpc-bare-address", "binary.bootstrap-params"],
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP, noCreate: true });
      const res = h.shim.startResult;
      ctx.equal("start exit status", res.code, 0);
      const out = res.combined.toString().trim();
      const c2 = ctx.emu.runner.o.containerd2;
      if (c2 && ((c2.series ?? "2.3") === "2.3" || c2.protocol)) {
        // containerd 2.3 sent BootstrapParams, or a protocol was asked: the answer is a version 3 result, parsed as that containerd parses it.
        const boot = h.shim.bootstrap;
        ctx.expect(boot.version === 3, `start answered bootstrap version ${boot.version}, want 3`);
        // containerd 2.x dials a gRPC shim's address as a bare path (net.Dial), a ttrpc one through its unix:// dialer.
        if (boot.protocol === "grpc") ctx.expect(/^\/\S+$/.test(boot.address), `gRPC bootstrap address is not an absolute socket path: ${JSON.stringify(boot.address)}`);
        else ctx.expect(/^unix:\/\/\/\S+$/.test(boot.address), `bootstrap address is not unix://<absolute path>: ${JSON.stringify(boot.address)}`);
        ctx.equal("bootstrap protocol", boot.protocol, c2.protocol);
      } else ctx.expect(/^unix:\/\/\/\S+$/.test(out), `start output is not a single unix:// address: ${JSON.stringify(out.slice(0, 200))}`);
      ctx.expect(res.stderr.length === 0, `start wrote to stderr (containerd would glue it into the address): ${JSON.stringify(res.stderr.toString().slice(0, 200))}`);
      return out;
    },
  },
  {
    name: "start-returns-with-eof",
    group: "binary",
    rule: "binary.start-output-eof",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP, noCreate: true });
      ctx.expect(h.shim.startResult.ms < 10_000, `start took ${Math.round(h.shim.startResult.ms)} ms to close its output`);
      return `start closed its output after ${Math.round(h.shim.startResult.ms)} ms`;
    },
  },
  {
    name: "daemon-stdio-detached",
    group: "binary",
    rule: "binary.daemon-detached-stdio",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP, noCreate: true });
      ctx.expect(h.shimPid > 0, "Connect gave no shim pid");
      const fd = (n: number) => fs.readlinkSync(`/proc/${h.shimPid}/fd/${n}`);
      ctx.equal("daemon fd 0", fd(0), "/dev/null");
      ctx.equal("daemon fd 1", fd(1), "/dev/null");
      const fd2 = fd(2);
      ctx.expect(!/^pipe:/.test(fd2), `daemon fd 2 is a pipe (${fd2}): a pipe from start would hang containerd`);
      return `fd 2 → ${fd2}`;
    },
  },
  {
    name: "address-file-written",
    group: "binary",
    rule: "binary.address-file",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP, noCreate: true });
      const f = `${h.bundle}/address`;
      ctx.expect(fs.existsSync(f), "no address file in the bundle");
      ctx.equal("address file", fs.readFileSync(f, "utf8").trim(), ttrpcForm(h.shim.address));
    },
  },
  {
    name: "socket-private",
    group: "binary",
    rule: "binary.socket-private",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP, noCreate: true });
      const p = socketPath(h.shim.address);
      ctx.expect(p, `address ${h.shim.address} names no socket path`);
      const st = fs.statSync(p!);
      ctx.expect(st.isSocket(), `${p} is not a socket`);
      ctx.expect((st.mode & 0o077) === 0, `socket mode ${(st.mode & 0o777).toString(8)} lets group or others connect`);
      return `${p} mode ${(st.mode & 0o777).toString(8)}`;
    },
  },
  {
    name: "connect-reports-pids",
    group: "binary",
    rule: "connect.pids",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      const c = await ctx.ok("Connect", h.task.Connect({ id: h.id }));
      ctx.expect(c.shimPid > 0 && alive(c.shimPid), `shim_pid ${c.shimPid} is not a live process`);
      ctx.equal("task_pid", c.taskPid, h.pid);
    },
  },
  {
    name: "shutdown-keeps-serving-with-task",
    group: "binary",
    rule: "shutdown.keeps-serving",
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      await ctx.ok("Shutdown with a task left", h.task.Shutdown({ id: h.id }));
      await sleep(300);
      const st = await ctx.ok("State after Shutdown", h.task.State({ id: h.id }));
      ctx.equal("status after Shutdown", st.status, 2);
      ctx.expect(alive(h.shimPid), "the shim exited although a task was left");
    },
  },
  {
    name: "shutdown-exits-and-removes-socket",
    group: "binary",
    rule: "shutdown.exits-when-empty",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP });
      await ctx.ok("Delete (created)", h.task.Delete({ id: h.id }));
      await ctx.outcome("Shutdown", h.task.Shutdown({ id: h.id }, { timeoutMs: 3_000 }));
      ctx.expect(await exited(h.shimPid, 5_000), "the shim still runs 5 s after Shutdown with no task left");
      const p = socketPath(h.shim.address)!;
      ctx.expect(!fs.existsSync(p), `socket ${p} left behind`);
    },
  },
  {
    name: "delete-binary-after-normal-delete",
    group: "binary",
    rule: "binary.delete-after-every-task",
    also: ["binary.delete-response"],
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "exit 0"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, { timeoutMs: 10_000 }));
      await ctx.ok("Delete", h.task.Delete({ id: h.id }));
      await ctx.outcome("Shutdown", h.task.Shutdown({ id: h.id }, { timeoutMs: 3_000 }));
      h.shim.close();
      const d = await ctx.emu.runner.delete(h.id, h.bundle);
      ctx.equal("delete exit status", d.result.code, 0);
      ctx.expect(d.response, "delete printed no decodable DeleteResponse");
      return `DeleteResponse exit_status ${d.response!.exitStatus}`;
    },
  },
  {
    name: "delete-binary-after-sigkilled-shim",
    group: "binary",
    rule: "binary.delete-after-crash",
    also: ["binary.delete-response"],
    async run(ctx) {
      const h = await ctx.running({ args: SLEEP });
      ctx.expect(h.shimPid > 0, "no shim pid");
      // runc's shim publishes /tasks/start after Start has answered: killed before that, it never does.
      await ctx.waitEvent(h.id, "/tasks/start");
      process.kill(h.shimPid, "SIGKILL");
      ctx.expect(await exited(h.shimPid, 5_000), "the shim survived SIGKILL");
      h.shim.close();
      const d = await ctx.emu.runner.delete(h.id, h.bundle);
      ctx.equal("delete exit status", d.result.code, 0);
      ctx.expect(d.response, "delete printed no decodable DeleteResponse");
      ctx.equal("DeleteResponse.exit_status", d.response!.exitStatus, 137);
      ctx.observe("delete exit_status", d.response!.exitStatus);
      ctx.expect(await exited(h.pid, 5_000), `process ${h.pid} (the task's pid) still runs after \`delete\``);
    },
  },
  {
    name: "start-group-reuses-shim",
    group: "binary",
    rule: "pods.start-reuses-shim",
    async run(ctx) {
      const sid = ctx.newId();
      const sandbox = await ctx.running({ id: sid, args: SLEEP, annotations: { "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": sid } });
      const member = await ctx.task({ args: SLEEP, annotations: { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sid } });
      ctx.equal("second start's address", member.shim.address, sandbox.shim.address);
      ctx.equal("shim pid (Connect)", member.shimPid, sandbox.shimPid);
      ctx.equal("member's address file", fs.readFileSync(`${member.bundle}/address`, "utf8").trim(), ttrpcForm(sandbox.shim.address));
      const st = await ctx.ok("State member", member.task.State({ id: member.id }));
      ctx.equal("member status", Status_names[st.status], "CREATED");
    },
  },
  {
    name: "group-delete-keeps-shared-shim",
    group: "binary",
    rule: "pods.delete-one-member",
    async run(ctx) {
      const sid = ctx.newId();
      const sandbox = await ctx.running({ id: sid, args: SLEEP, annotations: { "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": sid } });
      const member = await ctx.running({ args: ["/bin/sh", "-c", "exit 0"], annotations: { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sid } });
      await ctx.ok("Wait member", member.task.Wait({ id: member.id }, { timeoutMs: 15_000 }));
      await ctx.ok("Delete member", member.task.Delete({ id: member.id }));
      await ctx.ok("Shutdown (sandbox left)", member.task.Shutdown({ id: member.id }));
      member.shim.close();
      const d = await ctx.emu.runner.delete(member.id, member.bundle);
      ctx.equal("delete exit status", d.result.code, 0);
      await sleep(300);
      ctx.expect(alive(sandbox.shimPid), "the shared shim exited after the member's `delete`");
      const st = await ctx.ok("State sandbox", sandbox.task.State({ id: sandbox.id }));
      ctx.equal("sandbox status", Status_names[st.status], "RUNNING");
    },
  },
  {
    name: "unknown-method-unimplemented",
    group: "binary",
    rule: "wire.unknown-method",
    async run(ctx) {
      const h = await ctx.task({ args: SLEEP, noCreate: true });
      const c = h.shim.client;
      await ctx.fails("Task/NoSuchMethod", c.callRaw("containerd.task.v2.Task", "NoSuchMethod", () => {}, { timeoutMs: 5_000 }), Code.Unimplemented);
      await ctx.fails("NoSuchService/State", c.callRaw("containerd.task.v2.NoSuchService", "State", () => {}, { timeoutMs: 5_000 }), Code.Unimplemented);
    },
  },
];

/**
 * The `address` file is what containerd 1.x (and 2.x, without bootstrap.json)
 * dials over ttrpc: unix://<path>, also when the start result gave a gRPC
 * client the bare path 2.x's gRPC dialer needs.
 */
function ttrpcForm(address: string): string {
  return address.startsWith("/") ? `unix://${address}` : address;
}
