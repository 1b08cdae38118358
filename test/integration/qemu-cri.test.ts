// A Kubernetes pod in one VM, the way Kata runs it: containerd's CRI plugin
// with the `shimlab` handler pointing (runtime options ConfigPath) at a config
// with hypervisor = "qemu", the pod on a CNI network of its own (a VM cannot
// share the host's). The pod's sandbox boots one QEMU; both app containers run
// in that guest; removing the pod leaves no QEMU behind. What a VM cannot give
// (the host's network or IPC) is refused at once, naming the field.
import { describe, it, expect, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { containerConfig, hostNetworkPod, podConfig } from "../../src/harness/cri/pod";
import { cniMissing, cniNetworkFor } from "../../src/harness/cri/cni";
import { MountPropagation, NamespaceMode } from "../../src/gen/runtime.v1";
import { execFileSync } from "node:child_process";
import { ContainerState } from "../../src/gen/runtime.v1";
import { listProcesses } from "../../src/harness/leaks";
import { ensureImage, findKernel } from "../../src/guest-image";
import { missing, REQUIRE_ALL } from "../helpers/env";
import { useCriContainerd } from "../helpers/cri-fixture";
import { waitUntil } from "../helpers/cri";
import { qemuHarnessConfig } from "../../src/harness/qemu-config";

let skip = missing("root", "containerd", "ctr", "runc", "busybox", "qemu-system-x86_64", "crun", "xz");
if (!skip && !findKernel()) {
  if (REQUIRE_ALL) throw new Error("SHIMLAB_REQUIRE_ALL=1 but no guest kernel: apt-get install linux-image-amd64");
  skip = "needs linux-image-amd64";
}
if (!skip && cniMissing()) {
  if (REQUIRE_ALL) throw new Error(`SHIMLAB_REQUIRE_ALL=1 but ${cniMissing()}`);
  skip = cniMissing();
}
const net = cniNetworkFor(process.pid + 7);

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
      return { shimlabConfigPath: cfg, cni: net };
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
    const config = podConfig({ name: "vm-pod", uid: `uid-vm-pod-${process.pid}`, network: "pod" });
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

  it("refuses a pod with the host's network or IPC at once, naming the field, and boots nothing", async () => {
    const hostNet = hostNetworkPod({ name: "vm-hostnet", uid: `uid-vm-hostnet-${process.pid}` });
    const hostIpc = podConfig({ name: "vm-hostipc", uid: `uid-vm-hostipc-${process.pid}`, network: "pod" });
    hostIpc.linux!.securityContext!.namespaceOptions!.ipc = NamespaceMode.NODE;
    for (const [config, field] of [[hostNet, "hostNetwork"], [hostIpc, "hostIPC"]] as const) {
      const err = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: "shimlab" }).then(
        () => null,
        (e: Error) => e.message,
      );
      // The driver's admission check's words: refused before the sandbox (and its VM) was made.
      expect(err).toContain(`${field}: a VM sandbox cannot share the host's`);
      expect(qemusUnder(fx.env.ctd.dir)).toEqual([]);
    }
    expect((await fx.env.cri.runtime.ListPodSandbox({})).items.filter((p) => p.state === 0)).toEqual([]);
  }, 60_000);

  it("a privileged container has the guest's devices, not the host's, and makes a bridge; an unprivileged one has neither", async () => {
    const config = podConfig({ name: "vm-priv", uid: `uid-vm-priv-${process.pid}`, network: "pod" });
    config.linux!.securityContext!.privileged = true;
    const { podSandboxId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: "shimlab" });
    const run = async (name: string, privileged: boolean) => {
      const c = containerConfig({ name, image: fx.env.images.busybox, command: ["sleep", "600"] });
      c.linux!.securityContext!.privileged = privileged;
      const { containerId } = await fx.env.cri.runtime.CreateContainer({ podSandboxId, sandboxConfig: config, config: c });
      await fx.env.cri.runtime.StartContainer({ containerId });
      return containerId;
    };
    const exec = async (containerId: string, cmd: string) => {
      const r = await fx.env.cri.runtime.ExecSync({ containerId, cmd: ["sh", "-c", cmd], timeout: 60 });
      return { code: r.exitCode, out: (r.stdout.toString() + r.stderr.toString()).trim() };
    };
    const priv = await run("priv", true);
    const plain = await run("plain", false);
    // The agent's virtio-serial port is a device only the guest has; /dev/kvm, where the host has
    // one, is in containerd's list of the host's devices and must not be in the guest's.
    const devs = (await exec(priv, "echo ok > /dev/null && ls /dev")).out.split(/\s+/);
    expect(devs).toContain("null");
    expect(devs.some((d) => /^vport\d+p\d+$/.test(d)), devs.join(" ")).toBe(true);
    expect(devs).not.toContain("kvm");
    // The guest kernel's bridge, with the privileged container's CAP_NET_ADMIN (critest's capability spec).
    expect(await exec(priv, "brctl addbr shimlabbr0 && brctl delbr shimlabbr0 && echo bridged")).toEqual({ code: 0, out: "bridged" });
    expect((await exec(plain, "ls /dev")).out.split(/\s+/).some((d) => d.startsWith("vport"))).toBe(false);
    expect((await exec(plain, "brctl addbr shimlabbr1")).code).not.toBe(0);
    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId });
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId });
    await waitUntil("the pod's QEMU to go", () => qemusUnder(fx.env.ctd.dir).length === 0, 30_000);
  }, 240_000);

  it("volumes: a read-only volume leaves the tmpfs below it writable, and HostToContainer shows a host mount made after start", async () => {
    const vol = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-vm-vol-"));
    const tmpfs = path.join(vol, "tmpfs");
    const late = path.join(vol, "late");
    fs.mkdirSync(tmpfs);
    fs.mkdirSync(late);
    const src = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-vm-src-"));
    fs.writeFileSync(path.join(src, "flag"), "");
    // The host makes vol a shared mount of its own, as a kubelet's HostToContainer volume is, with a tmpfs below it.
    execFileSync("mount", ["--bind", vol, vol]);
    execFileSync("mount", ["--make-rshared", vol]);
    execFileSync("mount", ["-t", "tmpfs", "none", tmpfs]);
    const config = podConfig({ name: "vm-vol", uid: `uid-vm-vol-${process.pid}`, network: "pod" });
    try {
      const { podSandboxId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: "shimlab" });
      const mk = async (name: string, containerPath: string, readonly: boolean, propagation: number) => {
        const c = containerConfig({ name, image: fx.env.images.busybox, command: ["sleep", "600"] });
        c.mounts = [{ containerPath, hostPath: vol, readonly, propagation, selinuxRelabel: false, recursiveReadOnly: false } as never];
        const { containerId } = await fx.env.cri.runtime.CreateContainer({ podSandboxId, sandboxConfig: config, config: c });
        await fx.env.cri.runtime.StartContainer({ containerId });
        return containerId;
      };
      const exec = async (containerId: string, cmd: string) => {
        const r = await fx.env.cri.runtime.ExecSync({ containerId, cmd: ["sh", "-c", cmd], timeout: 60 });
        return { code: r.exitCode, out: (r.stdout.toString() + r.stderr.toString()).trim() };
      };
      const ro = await mk("ro", "/mnt", true, MountPropagation.PROPAGATION_PRIVATE);
      // runc's rbind + ro: the top read-only, what is mounted below it as it is.
      expect(await exec(ro, "touch /mnt/top")).toMatchObject({ code: 1, out: expect.stringContaining("Read-only file system") });
      expect(await exec(ro, "touch /mnt/tmpfs/file && echo ok")).toEqual({ code: 0, out: "ok" });
      expect(fs.existsSync(path.join(tmpfs, "file"))).toBe(true);

      const slave = await mk("slave", "/vol", false, MountPropagation.PROPAGATION_HOST_TO_CONTAINER);
      const priv = await mk("priv", "/vol", false, MountPropagation.PROPAGATION_PRIVATE);
      execFileSync("mount", ["--bind", src, late]);
      expect(await exec(slave, "ls -A /vol/late")).toEqual({ code: 0, out: "flag" });
      expect(await exec(priv, "ls -A /vol/late")).toEqual({ code: 0, out: "" });
      // The volume's owner takes its tmpfs away and removes the directory while the containers run, as
      // critest's read-only spec does: no copy of the tmpfs may sit on the volume's own directory in the
      // host's namespace (EBUSY), and the private copy the container has stays, as runc's would.
      execFileSync("umount", ["-l", tmpfs]);
      fs.rmdirSync(tmpfs);
      expect(await exec(ro, "test -e /mnt/tmpfs/file && echo kept")).toEqual({ code: 0, out: "kept" });
      await fx.env.cri.runtime.StopPodSandbox({ podSandboxId });
      await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId });
      await waitUntil("the pod's QEMU to go", () => qemusUnder(fx.env.ctd.dir).length === 0, 30_000);
    } finally {
      for (const m of [late, tmpfs, vol]) {
        try {
          execFileSync("umount", ["-l", m], { stdio: "ignore" });
        } catch {
          /* not mounted: the test stopped before */
        }
      }
      // src first: vol's removal is what fails (EBUSY) when a share still pins a directory in it.
      fs.rmSync(src, { recursive: true, force: true });
      fs.rmSync(vol, { recursive: true, force: true });
    }
  }, 240_000);
});
