// A Kubernetes pod in one VM, the way Kata runs it: containerd 1.6's CRI
// plugin with the `shimlab` handler pointing (runtime options ConfigPath) at a
// config with hypervisor = "qemu". The pod's sandbox boots one QEMU; both app
// containers run in that guest; removing the pod leaves no QEMU behind.
import { describe, it, expect, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { containerConfig, hostNetworkPod } from "../../src/harness/cri/pod";
import { ContainerState } from "../../src/gen/runtime.v1";
import { listProcesses } from "../../src/harness/leaks";
import { ensureImage } from "../../src/hypervisor/qemu/image";
import { findKernel } from "../../src/hypervisor/qemu/kernel";
import { missing, REQUIRE_ALL } from "../helpers/env";
import { useCriContainerd } from "../helpers/cri-fixture";
import { waitUntil } from "../helpers/cri";
import { qemuHarnessConfig } from "../../src/harness/qemu-config";

let skip = missing("root", "containerd", "ctr", "runc", "busybox", "qemu-system-x86_64", "xz");
if (!skip && !findKernel()) {
  if (REQUIRE_ALL) throw new Error("SHIMLAB_REQUIRE_ALL=1 but no guest kernel: apt-get install linux-image-amd64");
  skip = "needs linux-image-amd64";
}

const qemusUnder = (dir: string) => listProcesses().filter((p) => p.cmdline.includes("qemu-system") && p.cmdline.includes(dir));

describe.skipIf(skip)("CRI pod in one QEMU VM (TCG)", () => {
  let work: string;
  const fx = useCriContainerd({
    startTimeoutMs: 180_000,
    options: async () => {
      work = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-qemu-cri-"));
      await ensureImage({ runc: true });
      const cfg = path.join(work, "qemu.toml");
      fs.writeFileSync(cfg, qemuHarnessConfig());
      return { shimlabConfigPath: cfg };
    },
    dirs: () => [work],
  });

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(qemusUnder(fx.env.ctd.dir)).toEqual([]);
  });

  it("boots one VM for the pod and runs both containers in it", async () => {
    const config = hostNetworkPod({ name: "vm-pod", uid: `uid-vm-pod-${process.pid}` });
    const { podSandboxId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: "shimlab" });
    expect(qemusUnder(fx.env.ctd.dir)).toHaveLength(1);

    const ids: string[] = [];
    for (const name of ["first", "second"]) {
      const { containerId } = await fx.env.cri.runtime.CreateContainer({
        podSandboxId,
        sandboxConfig: config,
        config: containerConfig({ name, image: fx.env.images.busybox, command: ["sleep", "600"] }),
      });
      await fx.env.cri.runtime.StartContainer({ containerId });
      ids.push(containerId);
    }
    for (const c of ids) expect((await fx.env.cri.runtime.ContainerStatus({ containerId: c })).status?.state).toBe(ContainerState.CONTAINER_RUNNING);
    // Still the one VM: the containers joined the pod's shim and its guest.
    expect(qemusUnder(fx.env.ctd.dir)).toHaveLength(1);

    // Same kernel boot for both containers, and not the host's.
    const hostBoot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    const boots: string[] = [];
    for (const c of ids) {
      const r = await fx.env.cri.runtime.ExecSync({ containerId: c, cmd: ["cat", "/proc/sys/kernel/random/boot_id"], timeout: 60 });
      expect(r.exitCode, r.stderr.toString()).toBe(0);
      boots.push(r.stdout.toString().trim());
    }
    expect(boots[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(boots[1]).toBe(boots[0]);
    expect(boots[0]).not.toBe(hostBoot);
    const code = await fx.env.cri.runtime.ExecSync({ containerId: ids[1], cmd: ["sh", "-c", "exit 5"], timeout: 60 });
    expect(code.exitCode).toBe(5);

    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId });
    for (const c of ids) {
      const s = await waitUntil(`${c} to exit`, async () => {
        const st = (await fx.env.cri.runtime.ContainerStatus({ containerId: c })).status;
        return st?.state === ContainerState.CONTAINER_EXITED ? st : null;
      }, 60_000);
      expect(s.exitCode).toBe(137);
    }
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId });
    await waitUntil("the pod's QEMU to go", () => qemusUnder(fx.env.ctd.dir).length === 0, 30_000);
  }, 240_000);
});
