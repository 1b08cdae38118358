// The Task service's pod rules without root: tasks grouped into one sandbox
// by CRI's annotations, the sandbox task last, the pod's containers killed
// with it, an agent lost under running tasks, a failed Create undone. Same
// in-process core as task-service.test.ts.
import { describe, it, expect, afterEach, vi } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { startTaskCore, type TaskCore } from "../../src/testing/task-core";
import { refusalOf, statusOf } from "../../src/testing/wire-status";
import { childrenOf } from "../../src/testing/children";

const SIGKILL = 9;
const STOPPED = 3;
const SLEEP = ["/bin/sleep", "300"];
const TYPE = "io.kubernetes.cri.container-type";
const SANDBOX_ID = "io.kubernetes.cri.sandbox-id";

let core: TaskCore | null = null;
afterEach(async () => {
  await core?.close();
  core = null;
  expect(childrenOf()).toEqual([]);
});

async function pod(): Promise<TaskCore> {
  core = await startTaskCore({ shimId: "pod" });
  const c = core;
  await c.task.Create({ id: "pod", bundle: c.bundle("pod", { args: SLEEP, annotations: { [TYPE]: "sandbox", [SANDBOX_ID]: "pod" } }) });
  await c.task.Start({ id: "pod" });
  return c;
}

async function member(c: TaskCore, id: string, sandbox = "pod"): Promise<void> {
  await c.task.Create({ id, bundle: c.bundle(id, { args: SLEEP, annotations: { [TYPE]: "container", [SANDBOX_ID]: sandbox } }) });
  await c.task.Start({ id });
}

describe("Task service: pods", () => {
  it("puts a pod's containers in the sandbox its pause task opened: one agent for all (pods.grouping-annotations)", async () => {
    const c = await pod();
    await member(c, "app");
    await member(c, "sidecar");
    expect(c.hypervisor.vms).toHaveLength(1);
    expect([...c.hypervisor.vms[0].shared.keys()].sort()).toEqual(["app", "pod", "sidecar"]);
    const pids = await Promise.all(["pod", "app", "sidecar"].map(async (id) => (await c.task.State({ id })).pid));
    expect(new Set(pids).size).toBe(1); // every task reports the sandbox's pid, as Kata reports its VM's
  });

  it("refuses a container whose sandbox is not this shim's, and a second sandbox (FailedPrecondition)", async () => {
    const c = await pod();
    const stray = c.bundle("stray", { args: SLEEP, annotations: { [TYPE]: "container", [SANDBOX_ID]: "elsewhere" } });
    expect(await refusalOf(c.task.Create({ id: "stray", bundle: stray }))).toMatch(/^FailedPrecondition: BUG: Cannot start the container, since the sandbox hasn't been created/);
    const other = c.bundle("other", { args: SLEEP });
    expect(await refusalOf(c.task.Create({ id: "other", bundle: other }))).toMatch(/^FailedPrecondition: cannot create another sandbox in sandbox: pod/);
    expect(c.hypervisor.vms).toHaveLength(1);
    expect(c.events.of("/tasks/create").map((e) => e.event.containerId)).toEqual(["pod"]);
  });

  it("deletes the sandbox task only after its containers; the agent stops and the run dir goes before the shim exits (pods.sandbox-last)", async () => {
    const c = await pod();
    await member(c, "app");
    await c.task.Kill({ id: "pod", signal: SIGKILL });
    await c.task.Wait({ id: "pod" });
    expect(await refusalOf(c.task.Delete({ id: "pod" }))).toMatch(/^FailedPrecondition: sandbox pod still has containers: app/);
    expect((await c.task.State({ id: "pod" })).status).toBe(STOPPED);
    await c.task.Wait({ id: "app" }, { timeoutMs: 5_000 });
    await c.task.Delete({ id: "app" });
    const vm = c.hypervisor.vms[0];
    expect(vm.alive).toBe(true);
    // The answer does not wait for the agent's stop (containerd's next call is Shutdown); the daemon's exit does.
    expect(c.service.stopping()).toBeNull();
    await c.task.Delete({ id: "pod" });
    expect(c.service.taskIds).toEqual([]);
    const stopping = c.service.stopping();
    expect(stopping).not.toBeNull();
    await c.task.Shutdown({ id: "pod", now: false });
    await vi.waitFor(() => expect(c.shutdowns).toBe(1), { timeout: 5_000, interval: 1 });
    await stopping;
    expect(vm.alive).toBe(false);
    expect(fs.existsSync(path.join(c.dir, "run", "testing", "pod"))).toBe(false);
  });

  it("kills the pod's containers (137) when the sandbox's init exits, as Kata stops the VM (pods.sandbox-last)", async () => {
    const c = await pod();
    await member(c, "app");
    await c.task.Kill({ id: "pod", signal: SIGKILL });
    expect((await c.task.Wait({ id: "pod" })).exitStatus).toBe(137);
    expect((await c.task.Wait({ id: "app" }, { timeoutMs: 5_000 })).exitStatus).toBe(137);
    expect(c.events.of("/tasks/exit").map((e) => [e.event.containerId, e.event.exitStatus]).sort()).toEqual([
      ["app", 137],
      ["pod", 137],
    ]);
  });
});

describe("Task service: when things fail", () => {
  it("reports 255 for the running processes of an agent that died, as Kata does (kata#4419), and answers State after (exit.consistent)", async () => {
    core = await startTaskCore();
    const c = core;
    await c.task.Create({ id: "doomed", bundle: c.bundle("doomed", { args: SLEEP }) });
    await c.task.Start({ id: "doomed" });
    await c.task.Exec({ id: "doomed", execId: "x", spec: c.execSpec(SLEEP) });
    await c.task.Start({ id: "doomed", execId: "x" });
    await c.hypervisor.vms[0].crash();
    const [init, exec] = await Promise.all([c.task.Wait({ id: "doomed" }, { timeoutMs: 5_000 }), c.task.Wait({ id: "doomed", execId: "x" }, { timeoutMs: 5_000 })]);
    expect([init.exitStatus, exec.exitStatus]).toEqual([255, 255]);
    const st = await c.task.State({ id: "doomed" });
    expect([st.status, st.exitStatus]).toEqual([STOPPED, 255]);
    await c.events.next((e) => e.topic === "/tasks/exit" && e.event.id === "doomed");
    expect(c.events.of("/tasks/exit").map((e) => [e.event.id, e.event.exitStatus])).toEqual([
      ["x", 255],
      ["doomed", 255],
    ]);
    // containerd's teardown goes on: the exec and the task can be deleted with the agent gone.
    expect(await statusOf(c.task.Delete({ id: "doomed", execId: "x" }))).toBe("OK");
    expect((await c.task.Delete({ id: "doomed" })).exitStatus).toBe(255);
  });

  it("undoes a Create that fails: no task, no agent left, and the same id can be created again", async () => {
    core = await startTaskCore();
    const c = core;
    const bundle = c.bundle("retry", { args: SLEEP });
    const good = fs.readFileSync(path.join(bundle, "config.json"), "utf8");
    // No rootfs mounts and no root.path: nothing to run the container in.
    fs.writeFileSync(path.join(bundle, "config.json"), JSON.stringify({ ...JSON.parse(good), root: undefined }));
    expect(await statusOf(c.task.Create({ id: "retry", bundle }))).toBe("FailedPrecondition");
    expect(c.hypervisor.vms.map((v) => v.alive)).toEqual([false]);
    expect(await statusOf(c.task.State({ id: "retry" }))).toBe("NotFound");
    expect(c.events.events).toEqual([]);
    fs.writeFileSync(path.join(bundle, "config.json"), good);
    await c.task.Create({ id: "retry", bundle });
    expect(c.hypervisor.vms.map((v) => v.alive)).toEqual([false, true]);
  });

  it("refuses a bundle whose config.json is broken InvalidArgument, before any agent starts", async () => {
    core = await startTaskCore();
    const c = core;
    const bundle = c.bundle("broken", { args: SLEEP });
    fs.writeFileSync(path.join(bundle, "config.json"), "{ not json");
    expect(await statusOf(c.task.Create({ id: "broken", bundle }))).toBe("InvalidArgument");
    expect(c.hypervisor.vms).toHaveLength(0);
  });
});
