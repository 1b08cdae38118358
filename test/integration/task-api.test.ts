// The Task API calls no ctr command reaches (Update, Connect, Shutdown with
// tasks left, error codes), driven directly over ttrpc with the containerd
// stand-in against shimlab's binary.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { ContainerdEmulator } from "../../src/harness/emulator";
import { SHIM_BINARY } from "../../src/harness/containerd";
import type { ShimTask } from "../../src/harness/shim-runner";
import { Code, RpcError } from "../../src/ttrpc/status";
import { Metrics } from "../../src/gen/io.containerd.cgroups.v1";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";

const skip = missing("root", "runc", "busybox");
const PROCESS_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";

describe.skipIf(skip)("Task API on shimlab, call by call", () => {
  let emu: ContainerdEmulator;
  let rootfs: string;
  let cgroupParent: string;
  const open: ShimTask[] = [];

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    emu = new ContainerdEmulator({ binary: SHIM_BINARY, namespace: "tapi" });
    cgroupParent = emu.cgroupParent;
    await emu.start();
  });

  afterAll(async () => {
    await emu?.close();
    removeCgroupDirs(cgroupParent);
  });

  afterEach(async () => {
    await expectNoLeaks([emu.address], [emu.dir], cgroupParent);
  });

  async function task(id: string, args: string[]): Promise<ShimTask> {
    const b = emu.bundle(id, emu.spec(id, { args, rootPath: rootfs }));
    const t = await emu.startShim(id, b);
    open.push(t);
    await t.task.Create({ id, bundle: b });
    return t;
  }

  async function finish(t: ShimTask): Promise<void> {
    await emu.teardown([t]);
  }

  const code = (p: Promise<unknown>) => p.then(() => "OK", (e: RpcError) => `${e.codeName}: ${e.message}`);

  it("answers state, start and delete by the state machine", async () => {
    const t = await task("sm", ["/bin/sleep", "300"]);
    try {
      const st = await t.task.State({ id: "sm" });
      expect(st.status).toBe(1); // CREATED
      expect(st.exitedAt?.seconds).toBe(-62135596800); // Go's zero time, as runc's shim sends
      expect(await code(t.task.Wait({ id: "sm", execId: "nope" }))).toBe("NotFound: process does not exist nope: not found");
      await t.task.Start({ id: "sm" });
      expect(await code(t.task.Start({ id: "sm" }))).toMatch(/^FailedPrecondition: cannot start a running process/);
      expect(await code(t.task.Delete({ id: "sm" }))).toMatch(/^FailedPrecondition: cannot delete a running process/);
      const c = await t.task.Connect({ id: "sm" });
      expect(c.shimPid).toBeGreaterThan(0);
      expect(c.taskPid).toBe(st.pid);
      // Shutdown with a task left changes nothing
      await t.task.Shutdown({ id: "sm" });
      expect((await t.task.State({ id: "sm" })).status).toBe(2);
      await t.task.Kill({ id: "sm", signal: 9 });
      const w = await t.task.Wait({ id: "sm" });
      expect(w.exitStatus).toBe(137);
      const after = await t.task.State({ id: "sm" });
      expect([after.status, after.exitStatus]).toEqual([3, 137]);
      // wait after exit returns at once, with the same answer
      expect((await t.task.Wait({ id: "sm" })).exitStatus).toBe(137);
      expect(await code(t.task.Kill({ id: "sm", signal: 9 }))).toBe("NotFound: process already finished: not found");
      expect(await code(t.task.Kill({ id: "sm", signal: 9, all: true }))).toBe("OK");
      expect(await code(t.task.Pause({ id: "sm" }))).toMatch(/^FailedPrecondition/);
      const d = await t.task.Delete({ id: "sm" });
      expect(d.exitStatus).toBe(137);
      expect(await code(t.task.State({ id: "sm" }))).toBe("NotFound: container not created: not found");
    } finally {
      await finish(t);
    }
  });

  it("handles execs: added, started, waited, killed, deleted", async () => {
    const t = await task("ex", ["/bin/sleep", "300"]);
    try {
      await t.task.Start({ id: "ex" });
      const spec = (args: string[]) => ({ typeUrl: PROCESS_URL, value: Buffer.from(JSON.stringify({ args, cwd: "/", user: { uid: 0, gid: 0 } })) });
      await t.task.Exec({ id: "ex", execId: "a", spec: spec(["/bin/sleep", "300"]) });
      expect(await code(t.task.Exec({ id: "ex", execId: "a", spec: spec(["/bin/true"]) }))).toMatch(/^AlreadyExists/);
      expect((await t.task.State({ id: "ex", execId: "a" })).status).toBe(1);
      expect(await code(t.task.Kill({ id: "ex", execId: "a", signal: 9 }))).toBe("FailedPrecondition: process not created: failed precondition");
      await t.task.Start({ id: "ex", execId: "a" });
      const st = await t.task.State({ id: "ex", execId: "a" });
      expect([st.id, st.status]).toEqual(["a", 2]);
      expect(await code(t.task.Delete({ id: "ex", execId: "a" }))).toMatch(/^FailedPrecondition/);
      await t.task.Kill({ id: "ex", execId: "a", signal: 9 });
      expect((await t.task.Wait({ id: "ex", execId: "a" })).exitStatus).toBe(137);
      expect(await code(t.task.Kill({ id: "ex", execId: "a", signal: 9 }))).toBe("NotFound: process already finished: not found");
      const d = await t.task.Delete({ id: "ex", execId: "a" });
      expect(d.exitStatus).toBe(137);
      expect(await code(t.task.State({ id: "ex", execId: "a" }))).toBe("NotFound: process does not exist a: not found");
      expect(await code(t.task.Exec({ id: "ex", execId: "bad/id", spec: spec(["/bin/true"]) }))).toMatch(/^InvalidArgument/);
      expect(await code(t.task.Exec({ id: "ex", execId: "nospec" }))).toMatch(/^InvalidArgument/);
    } finally {
      await finish(t);
    }
  });

  it("applies Update through the agent to the container's cgroup, and reports Stats and Pids", async () => {
    const t = await task("up", ["/bin/sleep", "300"]);
    try {
      await t.task.Start({ id: "up" });
      const limit = 48 << 20;
      await t.task.Update({
        id: "up",
        resources: { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", value: Buffer.from(JSON.stringify({ memory: { limit } })) },
      });
      const f = `/sys/fs/cgroup/memory${cgroupParent}/up/up/memory.limit_in_bytes`;
      expect(Number(fs.readFileSync(f, "utf8"))).toBe(limit);
      const s = await t.task.Stats({ id: "up" });
      expect(s.stats?.typeUrl).toBe("io.containerd.cgroups.v1.Metrics");
      const m = Metrics.decode(s.stats!.value);
      expect(m.memory?.usage?.limit).toBe(limit);
      expect(m.pids?.current).toBeGreaterThanOrEqual(1);
      const pids = await t.task.Pids({ id: "up" });
      expect(pids.processes.length).toBe(1);
      expect(await code(t.task.Update({ id: "up" }))).toMatch(/^InvalidArgument/);
      expect(await code(t.task.Checkpoint({ id: "up", path: "/tmp/x" }))).toMatch(/^Unimplemented: checkpoint is not supported by shimlab/);
    } finally {
      await finish(t);
    }
  });

  it("refuses a task it cannot read: missing or broken config.json", async () => {
    const b = path.join(emu.bundlesDir(), "broken");
    fs.mkdirSync(b, { recursive: true });
    fs.writeFileSync(path.join(b, "config.json"), "{ not json");
    const start = await emu.runner.start("broken", b).then(
      () => "started",
      (e: Error) => e.message,
    );
    expect(start).toMatch(/config\.json is not valid JSON/);
    fs.rmSync(b, { recursive: true, force: true });
  });

  it("rejects a second sandbox in the same shim and a container without its sandbox", async () => {
    const t = await task("sb1", ["/bin/sleep", "300"]);
    try {
      const b2 = emu.bundle("sb2", emu.spec("sb2", { args: ["/bin/true"], rootPath: rootfs }));
      const err = await t.task.Create({ id: "sb2", bundle: b2 }).then(
        () => null,
        (e) => e as RpcError,
      );
      expect(err?.code).toBe(Code.FailedPrecondition);
      expect(err?.message).toContain("cannot create another sandbox in sandbox: sb1");
      const b3 = emu.bundle("c3", emu.spec("c3", { args: ["/bin/true"], rootPath: rootfs, annotations: { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "elsewhere" } }));
      const err3 = await t.task.Create({ id: "c3", bundle: b3 }).then(
        () => null,
        (e) => e as RpcError,
      );
      expect(err3?.message).toContain("BUG: Cannot start the container, since the sandbox hasn't been created");
    } finally {
      await finish(t);
    }
  });
});
