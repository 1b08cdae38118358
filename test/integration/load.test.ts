// Load on one pod's shim (ttrpc-stress in spirit): 200 execs at once across
// the pod's two containers, every exit code right, the ordering rules intact.
import fs from "node:fs";
import path from "node:path";
import { describe, it, expect } from "vitest";
import type { RecordedEvent } from "../../src/harness/events-server";
import type { ShimTask } from "../../src/harness/shim-runner";
import { missing } from "../helpers/env";
import { useEmulator } from "../helpers/emulator";

const skip = missing("root", "runc", "busybox");
const PROCESS_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const EXECS = 200;

describe.skipIf(skip)("one pod's shim under load", () => {
  const fx = useEmulator({ namespace: "load" });

  it(`keeps every exit code and the ordering rules with ${EXECS} concurrent execs in one pod`, async () => {
    const pod = "pod";
    const app = "app";
    const podSpec = fx.emu.spec(pod, { args: ["/bin/sleep", "300"], rootPath: fx.rootfs, annotations: { "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": pod } });
    const appSpec = fx.emu.spec(app, { args: ["/bin/sleep", "300"], rootPath: fx.rootfs, annotations: { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": pod } });
    const pb = fx.emu.bundle(pod, podSpec);
    const ab = fx.emu.bundle(app, appSpec);
    const t: ShimTask = await fx.emu.startShim(pod, pb);
    const joined = await fx.emu.runner.start(app, ab);
    joined.close();
    expect(joined.address, "the container joins its pod's shim").toBe(t.address);
    try {
      await t.task.Create({ id: pod, bundle: pb });
      await t.task.Start({ id: pod });
      await t.task.Create({ id: app, bundle: ab });
      await t.task.Start({ id: app });

      const spec = (code: number) => ({ typeUrl: PROCESS_URL, value: Buffer.from(JSON.stringify({ args: ["/bin/sh", "-c", `exit ${code}`], cwd: "/" })) });
      const one = async (i: number) => {
        const id = i % 2 ? pod : app;
        const execId = `e${i}`;
        await t.task.Exec({ id, execId, spec: spec(i % 256) });
        await t.task.Start({ id, execId });
        const w = await t.task.Wait({ id, execId }, { timeoutMs: 120_000 });
        await t.task.Delete({ id, execId });
        return w.exitStatus;
      };
      const codes = await Promise.all(Array.from({ length: EXECS }, (_, i) => one(i)));
      expect(codes).toEqual(Array.from({ length: EXECS }, (_, i) => i % 256));

      // Long-running execs, then each init dies: their exits must come before the init's.
      for (const id of [pod, app]) {
        for (let i = 0; i < 5; i++) {
          await t.task.Exec({ id, execId: `long${i}`, spec: { typeUrl: PROCESS_URL, value: Buffer.from(JSON.stringify({ args: ["/bin/sleep", "300"], cwd: "/" })) } });
          await t.task.Start({ id, execId: `long${i}` });
        }
      }
      for (const id of [app, pod]) {
        await t.task.Kill({ id, signal: 9, all: true });
        expect((await t.task.Wait({ id }, { timeoutMs: 30_000 })).exitStatus).toBe(137);
      }
      await new Promise((r) => setTimeout(r, 300));
      for (const id of [pod, app]) checkOrdering(fx.emu.events.forContainer(id), id, EXECS / 2);
      // All of it went over the sandbox's one agent connection.
      const agentLog = fs.readFileSync(path.join(fx.emu.dir, "run", "load", pod, "agent.log"), "utf8");
      expect(agentLog.split("\n").filter((l) => l.includes("agent connection opened")).length).toBe(1);
      await t.task.Delete({ id: app });
      await t.task.Delete({ id: pod });
    } finally {
      await t.task.Kill({ id: app, signal: 9, all: true }).catch(() => {});
      await t.task.Kill({ id: pod, signal: 9, all: true }).catch(() => {});
      await t.task.Delete({ id: app }).catch(() => {});
      await t.task.Delete({ id: pod }).catch(() => {});
      await t.task.Shutdown({ id: pod }).catch(() => {});
      t.close();
      await fx.emu.runner.delete(app, ab);
      await fx.emu.runner.delete(pod, pb);
    }
  }, 300_000);
});

/** runc's shim's rules: no exit before its start, no exec exit after the init's, every exit code once. */
function checkOrdering(events: RecordedEvent[], id: string, execs: number): void {
  const started = new Map<string, number>();
  const added = new Set<string>();
  let initExit = -1;
  const exits: RecordedEvent[] = [];
  events.forEach((e, i) => {
    const ev = e.event;
    if (e.topic === "/tasks/start") started.set(id, i);
    if (e.topic === "/tasks/exec-added") added.add(ev.execId);
    if (e.topic === "/tasks/exec-started") {
      expect(added.has(ev.execId), `exec-started before exec-added for ${ev.execId}`).toBe(true);
      started.set(ev.execId, i);
    }
    if (e.topic === "/tasks/exit") {
      expect(started.has(ev.id), `exit of ${ev.id} before its start`).toBe(true);
      if (ev.id === id) initExit = i;
      else {
        expect(initExit, `exec ${ev.id} exit after the init's`).toBe(-1);
        exits.push(e);
      }
    }
  });
  expect(initExit, `the init of ${id} exited`).toBeGreaterThan(-1);
  const short = exits.filter((e) => /^e\d+$/.test(e.event.id));
  expect(short.length).toBe(execs);
  expect(new Set(short.map((e) => e.event.id)).size).toBe(execs);
  for (const e of short) expect(e.event.exitStatus ?? 0).toBe(Number(e.event.id.slice(1)) % 256);
}
