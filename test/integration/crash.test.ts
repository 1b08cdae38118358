// A shim that dies (Kata's TestKilledVmmCleanup, containerd's dead-shim
// cleanup): containerd's `delete` path must remove the agent, the container,
// mounts and sockets; and an agent whose shim is gone must not outlive it.
import fs from "node:fs";
import path from "node:path";
import { describe, it, expect } from "vitest";
import { shimAddressOf } from "../../src/harness/bundle";
import { SHIM_DAEMON_SCRIPT, descendants, listProcesses, runProcesses, settle, shimlabProcesses } from "../../src/harness/leaks";
import { missing } from "../helpers/env";
import { useEmulator } from "../helpers/emulator";
import { containerProcesses } from "../helpers/leaks";
import { useContainerd } from "../helpers/containerd-fixture";
import { EventWatch, forceRemove, normalise } from "../helpers/ctr";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const RUNTIMES = { runc: "io.containerd.runc.v2", shimlab: "io.containerd.shimlab.v2" } as const;
const SHIM_CMD = { runc: /containerd-shim-runc-v2/, shimlab: SHIM_DAEMON_SCRIPT } as const;

describe.skipIf(skip)("a SIGKILLed shim, under containerd", () => {
  const fx = useContainerd();
  const seen: Record<string, string[]> = {};

  for (const rt of ["runc", "shimlab"] as const) {
    it(`is cleaned up by containerd's delete path (${rt})`, async () => {
      const id = `crash-${rt}`;
      const watch = new EventWatch(fx.ctd);
      await watch.ready();
      try {
        const run = await fx.ctd.ctr(["run", "-d", "--runtime", RUNTIMES[rt], "--rootfs", fx.rootfs, id, "/bin/sh", "-c", "sleep 3071"]);
        expect(run.code, run.err).toBe(0);
        const addr = shimAddressOf(path.join(fx.ctd.state, "io.containerd.runtime.v2.task", "default", id));
        const socket = addr.replace(/^unix:\/\//, "");
        expect(fs.existsSync(socket)).toBe(true);
        const shim = runProcesses().filter((p) => SHIM_CMD[rt].test(p.cmdline) && p.cmdline.includes(fx.ctd.address) && p.cmdline.includes(`-id ${id}`));
        expect(shim).toHaveLength(1);
        expect(containerProcesses(fx.ctd.cgroupParent).length + (rt === "runc" ? 1 : 0)).toBeGreaterThan(0);

        process.kill(shim[0].pid, "SIGKILL");
        await watch.waitFor((e) => e.topic === "/tasks/exit" && e.payload.container_id === id);

        // containerd ran the shim binary's delete: the task is gone, so is everything it held.
        const ls = await fx.ctd.ctr(["task", "ls"]);
        expect(ls.out).not.toMatch(new RegExp(`^${id}\\s`, "m"));
        if (rt === "shimlab") {
          expect(await settle(() => (fs.existsSync(socket) ? [socket] : []), 5_000)).toEqual([]);
          // containerd publishes the exit once `delete` has answered; the run dir goes in that same delete.
          const runDir = path.join(fx.ctd.dir, "run", "default", id);
          expect(await settle(() => (fs.existsSync(runDir) ? [runDir] : []), 5_000), "the sandbox's run dir").toEqual([]);
        }
        // runc's shim (containerd 1.6) leaves its socket file behind after SIGKILL; shimlab's delete removes it.
        else fs.rmSync(socket, { force: true });
        expect(await settle(() => shimlabProcesses([fx.ctd.address]), 5_000)).toEqual([]);
        // Its shim killed, the container is nobody's child: it is this run's by its cgroup (ctr gives runc's /<namespace>/<id>).
        const container = { cgroupParents: [fx.ctd.cgroupParent, `/default/${id}`] };
        expect(await settle(() => runProcesses(container).filter((p) => p.cmdline === "sleep 3071" || p.cmdline === "/bin/sh -c sleep 3071"), 5_000)).toEqual([]);
        expect((await fx.ctd.ctr(["container", "rm", id])).code).toBe(0);
        seen[rt] = watch.forContainer(id).map((e) => normalise(e, id));
      } finally {
        watch.stop();
        await forceRemove(fx.ctd, id);
      }
    }, 60_000);
  }

  it("publishes the same events for both runtimes (exit 137 from the dead-shim path)", () => {
    expect(seen.runc, "the runc case ran").toBeDefined();
    expect(seen.shimlab).toEqual(seen.runc);
    expect(seen.shimlab.join("\n")).toContain('"exit_status":137');
  });
});

describe.skipIf(skip)("a SIGKILLed shim, with nobody to clean up", () => {
  const fx = useEmulator({ namespace: "crash" });

  it("takes its agent and containers with it; a later delete still answers", async () => {
    const id = "orphan";
    const b = fx.emu.bundle(id, fx.emu.spec(id, { args: ["/bin/sleep", "300"], rootPath: fx.rootfs }));
    const t = await fx.emu.startShim(id, b);
    try {
      await t.task.Create({ id, bundle: b });
      await t.task.Start({ id });
      await t.task.Exec({ id, execId: "e", spec: { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: Buffer.from(JSON.stringify({ args: ["/bin/sleep", "300"], cwd: "/" })) } });
      await t.task.Start({ id, execId: "e" });
      const { shimPid } = await t.task.Connect({ id });
      const agents = descendants(shimPid).filter((p) => p.cmdline.includes("mock-agent"));
      expect(agents).toHaveLength(1);
      const alive = () => [...shimlabProcesses([fx.emu.address]), ...listProcesses().filter((p) => p.pid === agents[0].pid)];
      expect(containerProcesses(fx.emu.cgroupParent).length).toBeGreaterThanOrEqual(2);

      process.kill(shimPid, "SIGKILL");
      // No delete yet: the agent sees its lifeline close and tears down on its own.
      expect(await settle(alive, 8_000)).toEqual([]);
      expect(await settle(() => containerProcesses(fx.emu.cgroupParent), 5_000)).toEqual([]);

      // containerd's cleanup comes later and must still work, idempotently.
      const d1 = await fx.emu.runner.delete(id, b);
      expect(d1.result.code, d1.result.stderr.toString()).toBe(0);
      expect(d1.response?.exitStatus).toBe(137);
      const d2 = await fx.emu.runner.delete(id, b);
      expect(d2.result.code, d2.result.stderr.toString()).toBe(0);
    } finally {
      t.close();
    }
  }, 60_000);
});
