// The daemon boots the host agent as it starts (src/shim/early-agent.ts): Create
// takes that agent rather than booting a second, and a shim that goes away
// without a Create takes its agent and run dir with it.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { Options as RuntimeOptions } from "../../src/gen/runtimeoptions.v1";
import { missing } from "../helpers/env";
import { useEmulator } from "../helpers/emulator";
import { agentsOf, alive } from "../helpers/procs";

const skip = missing("root", "runc", "busybox");

async function until<T>(f: () => T | null | undefined | false, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(skip)("agent booted as the daemon starts", () => {
  const fx = useEmulator({ namespace: "pre" });

  const runDir = (id: string) => path.join(fx.emu.dir, "run", "pre", id);

  it("is up before Create, and Create takes it instead of booting another", async () => {
    const b = fx.emu.bundle("p1", fx.emu.spec("p1", { args: ["/bin/true"], rootPath: fx.rootfs }));
    const t = await fx.emu.startShim("p1", b);
    try {
      const daemon = Number(fs.readFileSync(path.join(b, "shim.pid"), "utf8"));
      const [agent] = await until(() => agentsOf(daemon).length > 0 && agentsOf(daemon), "the agent to boot");
      // recorded for `delete` right after the spawn, so it may trail the process by a moment
      await until(() => fs.existsSync(path.join(runDir("p1"), "vm.json")), "the agent's record");
      await t.task.Create({ id: "p1", bundle: b });
      expect(agentsOf(daemon)).toEqual([agent]);
      await t.task.Start({ id: "p1" });
      const w = await t.task.Wait({ id: "p1" }, { timeoutMs: 10_000 });
      expect(w.exitStatus).toBe(0);
      await t.task.Delete({ id: "p1" });
      await t.task.Shutdown({ id: "p1" });
      await until(() => !alive(agent), "the agent to exit");
    } finally {
      // after a failure above: take the task and the shim down as containerd would
      await t.task.Kill({ id: "p1", signal: 9, all: true }).catch(() => {});
      await t.task.Wait({ id: "p1" }, { timeoutMs: 10_000 }).catch(() => {});
      await t.task.Delete({ id: "p1" }).catch(() => {});
      await t.task.Shutdown({ id: "p1" }).catch(() => {});
      t.close();
      await fx.emu.runner.delete("p1", b);
    }
  });

  it("gives way to a fresh agent when Create brings its own configuration (runtime options ConfigPath)", async () => {
    const cfg = path.join(fx.emu.dir, "own.toml");
    fs.writeFileSync(cfg, 'hypervisor = "none"\n[agent]\nruntime = "auto"\n');
    const b = fx.emu.bundle("p4", fx.emu.spec("p4", { args: ["/bin/true"], rootPath: fx.rootfs }));
    const t = await fx.emu.startShim("p4", b);
    try {
      const daemon = Number(fs.readFileSync(path.join(b, "shim.pid"), "utf8"));
      const [early] = await until(() => agentsOf(daemon).length > 0 && agentsOf(daemon), "the agent to boot");
      await until(() => fs.existsSync(path.join(runDir("p4"), "vm.json")), "the agent's record");
      const options = { typeUrl: RuntimeOptions.typeName, value: RuntimeOptions.encode({ configPath: cfg }) };
      await t.task.Create({ id: "p4", bundle: b, options });
      expect(alive(early)).toBe(false);
      const now = agentsOf(daemon);
      expect(now).toHaveLength(1);
      expect(now[0]).not.toBe(early);
      await t.task.Start({ id: "p4" });
      expect((await t.task.Wait({ id: "p4" }, { timeoutMs: 10_000 })).exitStatus).toBe(0);
      await t.task.Delete({ id: "p4" });
      await t.task.Shutdown({ id: "p4" });
    } finally {
      await t.task.Kill({ id: "p4", signal: 9, all: true }).catch(() => {});
      await t.task.Wait({ id: "p4" }, { timeoutMs: 10_000 }).catch(() => {});
      await t.task.Delete({ id: "p4" }).catch(() => {});
      await t.task.Shutdown({ id: "p4" }).catch(() => {});
      t.close();
      await fx.emu.runner.delete("p4", b);
    }
  });

  it("goes away with a shim that never got a Create, run dir and all", async () => {
    const b = fx.emu.bundle("p2", fx.emu.spec("p2", { args: ["/bin/true"], rootPath: fx.rootfs }));
    const t = await fx.emu.startShim("p2", b);
    try {
      const daemon = Number(fs.readFileSync(path.join(b, "shim.pid"), "utf8"));
      const [agent] = await until(() => agentsOf(daemon).length > 0 && agentsOf(daemon), "the agent to boot");
      await t.task.Shutdown({ id: "p2" });
      t.close(); // as containerd does after Shutdown; the shim finishes its calls, then exits
      await until(() => !alive(daemon), "the shim to exit");
      await until(() => !alive(agent), "the agent to exit");
      expect(fs.existsSync(runDir("p2"))).toBe(false);
    } finally {
      t.close();
      await fx.emu.runner.delete("p2", b);
    }
  });

  it("boots nothing for a pod's second container", async () => {
    const annotations = { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "p1" };
    const b = fx.emu.bundle("p3", fx.emu.spec("p3", { args: ["/bin/true"], rootPath: fx.rootfs, annotations }));
    // no sandbox p1 runs now: start refuses, and nothing was booted for it
    await expect(fx.emu.startShim("p3", b)).rejects.toThrow(/no shim serves sandbox p1/);
    expect(fs.existsSync(runDir("p1"))).toBe(false);
    await fx.emu.runner.delete("p3", b);
  });
});
