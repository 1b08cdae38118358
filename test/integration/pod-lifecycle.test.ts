// A pod's lifecycle in one shim, driven by the containerd stand-in through
// the binary contract and the Task API: the sandbox task spawns the shim,
// containers join it, the sandbox cannot go before its containers, `delete`
// for one id leaves the rest of the pod alone, and the shim exits only after
// every task is deleted.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import { ContainerdEmulator } from "../../src/harness/emulator";
import { SHIM_BINARY } from "../../src/harness/containerd";
import type { ShimTask } from "../../src/harness/shim-runner";
import { listProcesses, settle } from "../../src/harness/leaks";
import { Code, type RpcError } from "../../src/ttrpc/status";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";

const skip = missing("root", "runc", "busybox");
const TYPE = "io.kubernetes.cri.container-type";
const SANDBOX = "io.kubernetes.cri.sandbox-id";
const RUNNING = 2;

describe.skipIf(skip)("a pod in one shim (containerd stand-in)", () => {
  let emu: ContainerdEmulator;
  let rootfs: string;
  let cgroupParent: string;

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    emu = new ContainerdEmulator({ binary: SHIM_BINARY, namespace: "podlc" });
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

  // The shim daemon, known by its arguments (`start` launched it with -socket), not by its script's path.
  const daemons = () => listProcesses().filter((p) => p.cmdline.includes(` -address ${emu.address} `) && p.cmdline.includes(" -socket "));
  const bundle = (id: string, args: string[], annotations: Record<string, string>) => emu.bundle(id, emu.spec(id, { args, rootPath: rootfs, annotations }));
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => null,
      (e: RpcError) => e,
    );

  it("serves the sandbox and its containers from one shim, refuses to delete the sandbox first, and exits after the last task", async () => {
    const podB = bundle("pod", ["/bin/sleep", "300"], { [TYPE]: "sandbox", [SANDBOX]: "pod" });
    const pod = await emu.startShim("pod", podB);
    const tasks: ShimTask[] = [pod];
    try {
      await pod.task.Create({ id: "pod", bundle: podB });
      await pod.task.Start({ id: "pod" });
      const shims = daemons();
      expect(shims).toHaveLength(1);
      const shimPid = shims[0].pid;

      // Containers: `start` prints the pod's address and spawns nothing.
      const b1 = bundle("c1", ["/bin/sleep", "301"], { [TYPE]: "container", [SANDBOX]: "pod" });
      const b2 = bundle("c2", ["/bin/sh", "-c", "exit 5"], { [TYPE]: "container", [SANDBOX]: "pod" });
      const c1 = await emu.startShim("c1", b1);
      const c2 = await emu.startShim("c2", b2);
      tasks.push(c1, c2);
      expect(c1.address).toBe(pod.address);
      expect(c2.address).toBe(pod.address);
      for (const b of [podB, b1, b2]) expect(fs.readFileSync(`${b}/address`, "utf8")).toBe(pod.address);
      expect(daemons().map((p) => p.pid)).toEqual([shimPid]);
      await c1.task.Create({ id: "c1", bundle: b1 });
      await c1.task.Start({ id: "c1" });
      await c2.task.Create({ id: "c2", bundle: b2 });
      await c2.task.Start({ id: "c2" });
      expect((await c2.task.Wait({ id: "c2" })).exitStatus).toBe(5);

      // The sandbox cannot be deleted while containers remain; it keeps running.
      const early = await failure(pod.task.Delete({ id: "pod" }));
      expect(early?.code).toBe(Code.FailedPrecondition);
      expect(early?.message).toContain("sandbox pod still has containers: c1, c2");
      expect((await pod.task.State({ id: "pod" })).status).toBe(RUNNING);

      // Shutdown while tasks remain is a no-op.
      await pod.task.Shutdown({ id: "pod" });
      await new Promise((r) => setTimeout(r, 200));
      expect(fs.existsSync(`/proc/${shimPid}`)).toBe(true);

      // c1 goes, and `delete` for c1 cleans up c1 only: the pod and c2 still answer.
      await c1.task.Kill({ id: "c1", signal: 9 });
      expect((await c1.task.Wait({ id: "c1" })).exitStatus).toBe(137);
      await c1.task.Delete({ id: "c1" });
      await c1.task.Shutdown({ id: "c1" });
      const d1 = await emu.runner.delete("c1", b1);
      expect(d1.result.code).toBe(0);
      expect(d1.response?.exitStatus).toBe(137);
      expect((await pod.task.State({ id: "pod" })).status).toBe(RUNNING);
      expect((await pod.task.State({ id: "c2" })).exitStatus).toBe(5);
      expect(daemons().map((p) => p.pid)).toEqual([shimPid]);
      const e1 = await failure(pod.task.State({ id: "c1" }));
      expect(e1?.code).toBe(Code.NotFound);

      await c2.task.Delete({ id: "c2" });
      expect((await emu.runner.delete("c2", b2)).result.code).toBe(0);
      // Only the sandbox is left: Shutdown still does not end the shim.
      await pod.task.Shutdown({ id: "pod" });
      await new Promise((r) => setTimeout(r, 200));
      expect(fs.existsSync(`/proc/${shimPid}`)).toBe(true);

      // The sandbox last: then the shim exits with its agent and socket.
      await pod.task.Kill({ id: "pod", signal: 9 });
      await pod.task.Wait({ id: "pod" });
      await pod.task.Delete({ id: "pod" });
      // The answer still reaches the caller before the shim goes.
      expect(await pod.task.Shutdown({ id: "pod" })).toEqual({});
      expect(await settle(() => (fs.existsSync(`/proc/${shimPid}`) ? [shimPid] : []), 5_000)).toEqual([]);
      expect(fs.existsSync(pod.address.replace("unix://", ""))).toBe(false);
      expect((await emu.runner.delete("pod", podB)).result.code).toBe(0);
    } finally {
      for (const t of tasks) t.close();
      for (const p of daemons()) process.kill(p.pid, "SIGTERM");
    }
  });

  it("refuses, spawning nothing: a container whose pod has no shim, an unknown type value, a container without a sandbox id", async () => {
    const cases: [string, Record<string, string>, string][] = [
      ["orphan", { [TYPE]: "container", [SANDBOX]: "ghost" }, "no shim serves sandbox ghost"],
      ["badtype", { [TYPE]: "pod", [SANDBOX]: "x" }, 'unknown container type "pod" in annotation io.kubernetes.cri.container-type'],
      ["noid", { "io.kubernetes.cri-o.ContainerType": "container" }, "container noid has io.kubernetes.cri-o.ContainerType=container but no sandbox id"],
    ];
    for (const [id, annotations, message] of cases) {
      const b = bundle(id, ["/bin/true"], annotations);
      const err = await emu.startShim(id, b).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message, id).toContain(message);
      expect(fs.existsSync(`${b}/address`), id).toBe(false);
      expect(daemons(), id).toEqual([]);
    }
  });
});
