// Warm QEMU VMs (`shimlab factory` with hypervisor = "qemu", src/hypervisor/qemu/warm.ts):
// the factory keeps booted VMs, each under its keeper (native/vm-keeper.c); a
// shim whose configuration enables the factory takes one instead of booting
// its own, runs its container in it and stops it with its sandbox. A VM killed
// in the pool is replaced; the factory's death takes its pooled VMs, never a
// handed-out one; a VM of another shape (here: more memory) is not handed out.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { missing, REQUIRE_ALL } from "../helpers/env";
import { useEmulator, withTask } from "../helpers/emulator";
import type { ShimTask } from "../../src/harness/shim-runner";
import { alive } from "../helpers/procs";
import { waitUntil } from "../helpers/cri";
import { expectNoProcessesMentioning } from "../helpers/leaks";
import { REPO_ROOT } from "../../src/harness/containerd";
import { factoryStatus } from "../../src/hypervisor/factory/client";
import type { FactoryStatus } from "../../src/hypervisor/factory/protocol";
import { readVmRecord } from "../../src/hypervisor/rundir";
import { ensureImage, findKernel } from "../../src/guest-image";
import { QEMU_HARNESS_SETTINGS } from "../../src/harness/qemu-config";
import { listProcesses } from "../../src/util/proc";
import { mountsBelow } from "../../src/util/mounts";
import { WARM_CLAIM_FILE } from "../../src/hypervisor/qemu/vm";

let skip = missing("root", "runc", "busybox", "qemu-system-x86_64", "crun");
if (!skip && !findKernel()) {
  if (REQUIRE_ALL) throw new Error("SHIMLAB_REQUIRE_ALL=1 but no guest kernel: apt-get install linux-image-amd64");
  skip = "needs linux-image-amd64";
}
const SHIMLAB = path.join(REPO_ROOT, "bin", "shimlab");
/** A warm VM's boot under TCG at the pool's niceness, on a loaded 2-core machine. */
const BOOT_MS = 120_000;

describe.skipIf(skip)("warm QEMU VMs from shimlab factory (TCG)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-factory-qemu-"));
  const socket = path.join(dir, "factory.sock");
  const config = path.join(dir, "shim.toml");
  const qemuTable = ['hypervisor = "qemu"', "[qemu]", ...QEMU_HARNESS_SETTINGS].join("\n");
  fs.writeFileSync(config, `${qemuTable}\n[factory]\nenable = true\nsocket = ${JSON.stringify(socket)}\npool_size = 1\n`);
  // the same VMs but bigger: not the pool's shape
  const bigger = path.join(dir, "bigger.toml");
  fs.writeFileSync(bigger, `${qemuTable.replace("memory_mb = 512", "memory_mb = 640")}\n[factory]\nenable = true\nsocket = ${JSON.stringify(socket)}\n`);
  const fx = useEmulator({ namespace: "fq", env: { ...process.env, SHIMLAB_CONFIG: config } });
  const fxBig = useEmulator({ namespace: "fqb", env: { ...process.env, SHIMLAB_CONFIG: bigger } });
  const runDir = (id: string, f = fx) => path.join(f.emu.dir, "run", f === fx ? "fq" : "fqb", id);

  const factory = (sub: string, ...more: string[]) => execFileSync(SHIMLAB, ["factory", sub, "--config", config, "--dir", dir, ...more], { encoding: "utf8", timeout: BOOT_MS + 30_000 });
  const status = (): Promise<FactoryStatus> => factoryStatus(socket);
  const qemuChildrenOf = (pid: number) => listProcesses().filter((p) => p.ppid === pid && p.cmdline.includes("qemu-system"));

  beforeAll(async () => {
    await ensureImage({ runc: true });
    expect(factory("start")).toMatch(/1\/1 warm QEMU VMs ready/);
  }, BOOT_MS + 60_000);

  afterAll(async () => {
    try {
      factory("stop");
    } finally {
      // every VM the factory booted is gone: pooled ones with it, handed-out ones with their sandboxes
      await expectNoProcessesMentioning([dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  const withSandbox = (id: string, args: string[], body: (t: ShimTask, daemon: number) => Promise<void>, f = fx) =>
    withTask(f, id, args, body, { createMs: BOOT_MS, startMs: 60_000, waitMs: 30_000 });

  it("a sandbox takes the warm VM instead of booting one; its container runs in it; the VM and its directory go with the sandbox", async () => {
    const s0 = await status();
    expect(s0.warm).toHaveLength(1);
    const [vm] = s0.warm;
    let keeper = 0;
    let vmDir = "";
    await withSandbox("q1", ["/bin/sh", "-c", "exit 7"], async (t, daemon) => {
      const rec = readVmRecord(runDir("q1"))!;
      expect(rec.kind).toBe("qemu");
      expect(rec.pid).toBe(vm);
      keeper = rec.extraPids![0].pid;
      vmDir = rec.dirs![0];
      // claimed, so its keeper keeps it past the unclaimed deadline (vm-keeper --claim)
      expect(fs.existsSync(path.join(vmDir, WARM_CLAIM_FILE))).toBe(true);
      // under TCG it rehearsed a pod's work in the pool, on the VM's share, its container exiting 0, before its agent served
      const consoleLog = fs.readFileSync(path.join(vmDir, "console.log"), "latin1");
      // and the network's commands in a namespace of its own
      const rehearsed = consoleLog.search(/msg="rehearsed" component=mock-agent pid=1 exitCode=0 .* networkCommandsMs=\d+ shared=true/);
      expect(rehearsed, consoleLog.slice(-2000)).toBeGreaterThan(0);
      expect(consoleLog.indexOf('msg="agent serving on virtio-serial"')).toBeGreaterThan(rehearsed);
      expect(consoleLog).not.toContain("rehearsal");
      expect(consoleLog).not.toContain("rehearsing without");
      expect(listProcesses().find((p) => p.pid === keeper)?.cmdline ?? "").toMatch(/--claim \S+\/claimed 30000 /);
      // no QEMU of its own; the warm one is its keeper's, not the shim's child
      expect(qemuChildrenOf(daemon)).toEqual([]);
      expect(listProcesses().find((p) => p.pid === vm)?.ppid).toBe(keeper);
      // in the shim's cgroups now, as a VM it booted would be, not the factory's
      for (const p of [vm, keeper]) expect(fs.readFileSync(`/proc/${p}/cgroup`, "utf8")).toBe(fs.readFileSync(`/proc/${daemon}/cgroup`, "utf8"));
      // the container's rootfs reached the guest through the warm VM's shared directory
      expect(mountsBelow(vmDir).length).toBeGreaterThan(0);
      expect((await t.task.Wait({ id: "q1" }, { timeoutMs: 60_000 })).exitStatus).toBe(7);
      expect((await status()).handedOut).toBe(s0.handedOut + 1);
    });
    // the sandbox stops after Delete's answer, and the shim exits after it: the VM, then its directory, go meanwhile
    await waitUntil("the taken VM to stop with its sandbox", () => !alive(vm) && !alive(keeper), 30_000);
    await waitUntil("the taken VM's directory to go with it", () => !fs.existsSync(vmDir), 10_000);
    await waitUntil("the pool to refill", async () => (await status()).ready === 1, BOOT_MS);
  }, BOOT_MS * 2);

  it("a VM of another shape is not handed out: that sandbox boots its own", async () => {
    await waitUntil("a full pool", async () => (await status()).ready === 1, BOOT_MS);
    const [warm] = (await status()).warm;
    await withSandbox(
      "q2",
      ["/bin/true"],
      async (_t, daemon) => {
        expect(qemuChildrenOf(daemon)).toHaveLength(1);
        expect(readVmRecord(runDir("q2", fxBig))!.pid).not.toBe(warm);
      },
      fxBig,
    );
    expect((await status()).warm).toEqual([warm]);
  }, BOOT_MS * 2);

  it("a warm VM killed in the pool is replaced, never handed out", async () => {
    await waitUntil("a full pool", async () => (await status()).ready === 1, BOOT_MS);
    const s0 = await status();
    const [victim] = s0.warm;
    process.kill(victim, "SIGKILL");
    await waitUntil("the factory to see it die", async () => (await status()).replaced > s0.replaced, 30_000);
    await waitUntil("its replacement", async () => (await status()).ready === 1, BOOT_MS);
    expect((await status()).warm).not.toContain(victim);
  }, BOOT_MS * 2);

  it("the factory's death breaks no running pod, and takes its pooled VMs", async () => {
    await waitUntil("a full pool", async () => (await status()).ready === 1, BOOT_MS);
    const factoryPid = (await status()).pid;
    await withSandbox("q3", ["sleep", "120"], async (t) => {
      const vm = readVmRecord(runDir("q3"))!.pid;
      // a second sandbox's VM sits in the pool by now, or is booting
      await waitUntil("the pool to refill", async () => (await status()).ready === 1, BOOT_MS);
      const [pooled] = (await status()).warm;
      process.kill(factoryPid, "SIGKILL");
      await waitUntil("the factory to die", () => !alive(factoryPid), 15_000);
      // the pooled VM's keeper sees EOF on its lifeline and ends it; the handed-out one lives on
      await waitUntil("the pooled VM to go", () => !alive(pooled), 15_000);
      expect(alive(vm)).toBe(true);
      expect((await t.task.State({ id: "q3" })).status).toBe(2); // RUNNING
      await t.task.Kill({ id: "q3", signal: 9 });
      expect((await t.task.Wait({ id: "q3" }, { timeoutMs: 30_000 })).exitStatus).toBe(137);
    });
    // a new factory removes what the dead one left
    expect(factory("start")).toMatch(/1\/1 warm QEMU VMs ready/);
  }, BOOT_MS * 3);
});
