// hypervisor = "qemu" end to end: containerd 1.6 runs shimlab's shim, which
// boots a real QEMU VM (TCG here: the machines' KVM is PVM), dials the mock
// agent inside it over virtio-serial, shares the container's rootfs in over
// 9p, and runs the container in the guest. After every test no QEMU, agent
// socket or mount may be left.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { Containerd } from "../../src/harness/containerd";
import { buildBusyboxRootfs } from "../../src/harness/rootfs";
import { listProcesses } from "../../src/harness/leaks";
import { cacheRoot, ensureImage, type GuestImage, findKernel, findGuestKernel } from "../../src/guest-image";
import { QemuHypervisor } from "../../src/hypervisor/qemu";
import { findImage } from "../../src/hypervisor/qemu/image-manifest";
import { ContainerdEmulator } from "../../src/harness/emulator";
import { mountsBelow } from "../../src/pod/mount";
import { SHIM_BINARY } from "../../src/harness/containerd";
import { AgentClient } from "../../src/agent/client";
import { FdLogger } from "../../src/util/logger";
import { missing, REQUIRE_ALL } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";
import { qemuHarnessConfig } from "../../src/harness/qemu-config";

const RUNTIME = "io.containerd.shimlab.v2";
let skip = missing("root", "containerd", "ctr", "runc", "busybox", "qemu-system-x86_64", "crun", "xz");
if (!skip && !findKernel()) {
  if (REQUIRE_ALL) throw new Error("SHIMLAB_REQUIRE_ALL=1 but no guest kernel: apt-get install linux-image-amd64");
  skip = "needs linux-image-amd64";
}
// CI builds shimlab's guest kernel first (.ci/run): the sandboxes below boot it, one boots Debian's.
if (!skip && REQUIRE_ALL && !findGuestKernel(cacheRoot())) throw new Error("SHIMLAB_REQUIRE_ALL=1 but shimlab's guest kernel is not built: ./bin/shimlab image build --kernel");

function qemusUnder(dir: string) {
  return listProcesses().filter((p) => p.cmdline.includes("qemu-system") && p.cmdline.includes(dir));
}

async function until<T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(skip)("QEMU sandboxes through ctr (TCG)", () => {
  let ctd: Containerd;
  let work: string;
  let rootfs: string;
  let image: GuestImage;
  let configPath: string;
  let shortBootConfig: string;

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-qemu-"));
    const progress: string[] = [];
    // runc goes into the guest: containers there get their own namespaces and root, as in Kata's guest.
    image = await ensureImage({ runc: true, onProgress: (m) => progress.push(m) });
    expect(progress.length).toBeGreaterThan(0);
    // A rootfs of our own, with a file only the container's root has.
    rootfs = buildBusyboxRootfs(path.join(work, "rootfs"));
    fs.writeFileSync(path.join(rootfs, "etc", "shimlab-marker"), "from-the-host-rootfs\n");
    configPath = path.join(work, "qemu.toml");
    // No kernel or initrd named: the shim reads the manifest of the image just built. runc in the
    // guest here; the other QEMU suites run the harness's crun.
    fs.writeFileSync(configPath, qemuHarnessConfig({ guestRuntime: "runc" }));
    // Too short for any boot under TCG: proves the deadline and the teardown.
    shortBootConfig = path.join(work, "short.toml");
    fs.writeFileSync(shortBootConfig, `hypervisor = "qemu"\n[qemu]\nboot_timeout_ms = 400\nkernel = "${image.kernel}"\ninitrd = "${image.initrd}"\n`);
    ctd = new Containerd({ env: { SHIMLAB_CONFIG: configPath } });
    await ctd.start();
  }, 180_000);

  afterAll(async () => {
    await ctd?.destroy();
    if (work) {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  afterEach(async () => {
    await expectNoLeaks([ctd.dir], [ctd.dir, work]);
    expect(qemusUnder(ctd.dir)).toEqual([]);
  });

  it("image build is cached by content: a second build finds the first", async () => {
    const again = await ensureImage({ runc: true });
    expect(again.built).toBe(false);
    expect(again.key).toBe(image.key);
    expect(fs.statSync(again.initrd).size).toBe(image.initrdBytes);
    // The manifest a sandbox reads names this image, and holds up to the sandbox's check.
    const found = findImage({ cacheDir: cacheRoot(), kernels: [image.variant.kernel], layout: "share", runc: true });
    expect("manifest" in found && found.manifest).toMatchObject({ key: image.key, initrd: { path: image.initrd, size: image.initrdBytes } });
  });

  it("a sandbox without a built image fails at once naming the command, and builds nothing", async () => {
    const empty = path.join(work, "empty-cache");
    fs.mkdirSync(empty);
    const hv = new QemuHypervisor(QemuHypervisor.configFrom({ cache_dir: empty, boot_timeout_ms: 120_000 }, "test"));
    const t0 = Date.now();
    await expect(hv.start({ sandboxId: "unbuilt", namespace: "test", runDir: path.join(work, "unbuilt"), logger: new FdLogger(null) })).rejects.toThrow(
      `no guest image in ${empty} (guest_kernel = "auto", guest_usr = "share", guest_runtime = "runc"): run \`shimlab image build --cache-dir ${empty}\``,
    );
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(fs.readdirSync(empty)).toEqual([]);
    expect(qemusUnder(empty)).toEqual([]);
  });

  it("image: shimlab's guest kernel when built, /usr on a read-only share holding node, runc, crun and the agent", () => {
    expect(image.layout).toBe("share");
    for (const f of ["bin/node", "sbin/runc", "bin/crun", "lib/shimlab/agent.blob", "lib/shimlab/dist/bundle/mock-agent.js"]) expect(fs.existsSync(path.join(image.usrDir!, f)), f).toBe(true);
    // what the kernel unpacks before /init: busybox, libraries, init; not node's 86 MB
    expect(image.initrdBytes).toBeLessThan(16e6);
    if (findGuestKernel(cacheRoot())) expect(image.kernelVersion).toMatch(/-shimlab$/);
  });

  it("Debian's kernel with /usr in the initramfs, on a microvm; the virtio-serial stream survives the host reconnecting", async () => {
    const runDir = path.join(work, "direct");
    // The other kernel and layout: Debian's, its virtio modules loaded by init, everything unpacked from the initramfs.
    // A sandbox never builds its image: this one is built first, as `shimlab image build --debian-kernel --layout initramfs --no-runc` does.
    await ensureImage({ kernel: findKernel()!, layout: "initramfs", runc: false });
    const hv = new QemuHypervisor(QemuHypervisor.configFrom({ machine: "microvm", guest_kernel: "debian", guest_usr: "initramfs", guest_runtime: "host", boot_timeout_ms: 120_000 }, "test"));
    const vm = await hv.start({ sandboxId: "direct", namespace: "test", runDir, logger: new FdLogger(null) });
    try {
      expect(vm.kind).toBe("qemu");
      const cmdline = fs.readFileSync(`/proc/${vm.pid}/cmdline`, "utf8");
      expect(cmdline).toContain("microvm");
      expect(cmdline).toContain(`vmlinux-${findKernel()!.version}`);
      expect(cmdline).not.toContain("shimlabUsr");
      expect(JSON.parse(fs.readFileSync(path.join(runDir, "vm.json"), "utf8"))).toMatchObject({ kind: "qemu", pid: vm.pid });
      for (let i = 0; i < 3; i++) {
        const c = await AgentClient.connect(vm.agentTransport, { timeoutMs: 30_000 });
        expect((await c.health.Version({})).agentVersion).toMatch(/^shimlab-mock-agent/);
        c.close();
        await new Promise((r) => setTimeout(r, 50));
      }
      console.log(`microvm boot to agent ready: ${(vm as unknown as { times: { readyMs: number } }).times.readyMs} ms (TCG)`);
    } finally {
      await vm.stop();
    }
    expect(await vm.exited).toMatchObject({ code: 0 });
    expect(qemusUnder(runDir)).toEqual([]);
    expect(fs.readdirSync(runDir).filter((f) => f.endsWith(".sock"))).toEqual([]);
  }, 300_000);

  it("ctr run --rm boots a VM, runs echo in the guest and propagates exit codes", async () => {
    const r = await ctd.ctr(["run", "--rm", "--runtime", RUNTIME, "--rootfs", rootfs, "q1", "/bin/sh", "-c", "echo hi; cat /etc/shimlab-marker; cat /proc/version; echo pid=$$; ls /opt 2>&1; exit 3"], { timeoutMs: 150_000 });
    expect(r.err).toBe("");
    const [hi, marker, version, pid, opt] = r.out.split("\n");
    expect(hi).toBe("hi");
    // The rootfs came in over 9p and is the container's root (runc in the guest), not the guest's initramfs.
    expect(marker).toBe("from-the-host-rootfs");
    expect(pid).toBe("pid=1");
    expect(opt).toMatch(/No such file or directory/); // the guest's /opt/shimlab is not visible
    // The guest's kernel, not the host's.
    expect(version).toContain(image.kernelVersion);
    expect(version).not.toBe(fs.readFileSync("/proc/version", "utf8").trim());
    expect(r.code).toBe(3);
  }, 180_000);

  it("exec runs in the same VM; kill and delete stop it", async () => {
    const d = await ctd.ctr(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, "q2", "/bin/sleep", "300"], { timeoutMs: 150_000 });
    expect(d.code, d.err).toBe(0);
    try {
      const ls = await ctd.ctr(["task", "ls"]);
      const pid = Number(/q2\s+(\d+)\s+RUNNING/.exec(ls.out)?.[1]);
      // Like Kata, the task's pid is QEMU's.
      expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("qemu-system");
      const h = await ctd.ctr(["task", "exec", "--exec-id", "e1", "q2", "/bin/hostname"]);
      expect(h.code, h.err).toBe(0);
      expect(h.out.trim()).not.toBe(os.hostname());
      const boot1 = await ctd.ctr(["task", "exec", "--exec-id", "e2", "q2", "/bin/cat", "/proc/sys/kernel/random/boot_id"]);
      const boot2 = await ctd.ctr(["task", "exec", "--exec-id", "e3", "q2", "/bin/cat", "/proc/sys/kernel/random/boot_id"]);
      expect(boot1.out.trim()).toMatch(/^[0-9a-f-]{36}$/);
      expect(boot1.out).toBe(boot2.out); // one VM
      expect(boot1.out).not.toBe(fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8"));
      const e = await ctd.ctr(["task", "exec", "--exec-id", "e4", "q2", "/bin/sh", "-c", "exit 5"]);
      expect(e.code).toBe(5);
      expect((await ctd.ctr(["task", "kill", "-s", "SIGKILL", "q2"])).code).toBe(0);
      await until("q2 to stop", async () => /q2\s+\d+\s+STOPPED/.test((await ctd.ctr(["task", "ls"])).out));
    } finally {
      await ctd.ctr(["task", "delete", "-f", "q2"]);
      await ctd.ctr(["container", "rm", "q2"]);
    }
  }, 180_000);

  it("SIGKILL of QEMU while a task runs: the task exits and nothing is left", async () => {
    const d = await ctd.ctr(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, "q3", "/bin/sleep", "300"], { timeoutMs: 150_000 });
    expect(d.code, d.err).toBe(0);
    const events = spawn("ctr", ["--address", ctd.address, "events"], { env: ctd.env() });
    let evOut = "";
    events.stdout.on("data", (x) => (evOut += x));
    try {
      await new Promise((r) => setTimeout(r, 300));
      const [qemu] = qemusUnder(ctd.dir);
      expect(qemu).toBeDefined();
      process.kill(qemu.pid, "SIGKILL");
      await until("/tasks/exit for q3", async () => /\/tasks\/exit .*"container_id":"q3"/.test(evOut));
      await until("q3 to stop", async () => /q3\s+\d+\s+STOPPED/.test((await ctd.ctr(["task", "ls"])).out));
    } finally {
      events.kill();
      await ctd.ctr(["task", "delete", "-f", "q3"]);
      await ctd.ctr(["container", "rm", "q3"]);
    }
  }, 180_000);

  it("SIGKILL of the shim takes its QEMU with it; containerd's cleanup leaves nothing", async () => {
    const d = await ctd.ctr(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, "q5", "/bin/sleep", "300"], { timeoutMs: 150_000 });
    expect(d.code, d.err).toBe(0);
    try {
      const [qemu] = qemusUnder(ctd.dir);
      expect(qemu).toBeDefined();
      const shim = listProcesses().find((p) => p.pid === qemu.ppid);
      expect(shim?.cmdline).toMatch(/shim/);
      process.kill(shim!.pid, "SIGKILL");
      // QEMU dies with its parent (PR_SET_PDEATHSIG), and containerd's `delete` would kill it by vm.json anyway.
      await until("QEMU to die with its shim", async () => qemusUnder(ctd.dir).length === 0, 10_000);
      await until("q5 to stop", async () => !/q5\s+\d+\s+RUNNING/.test((await ctd.ctr(["task", "ls"])).out));
    } finally {
      await ctd.ctr(["task", "delete", "-f", "q5"]);
      await ctd.ctr(["container", "rm", "q5"]);
    }
    // containerd cleans up after a dead shim in the background (its `delete` unmounts the shared rootfs).
    await until("the dead shim's cleanup", async () => mountsBelow(ctd.dir).length === 0, 20_000);
  }, 180_000);

  it("a pod (sandbox + two containers) runs in one VM", async () => {
    // The pod asks for more guest memory through an annotation its configuration allows.
    const podConfig = path.join(work, "pod.toml");
    fs.writeFileSync(podConfig, fs.readFileSync(configPath, "utf8") + `enable_annotations = ["default_memory"]\n`);
    const emu = new ContainerdEmulator({ binary: SHIM_BINARY, namespace: "qpod", env: { SHIMLAB_CONFIG: podConfig } });
    await emu.start();
    const ann = (type: string) => ({
      "io.kubernetes.cri.container-type": type,
      "io.kubernetes.cri.sandbox-id": "qpod",
      ...(type === "sandbox" ? { "io.katacontainers.config.hypervisor.default_memory": "640" } : {}),
    });
    const spec = (id: string, args: string[], type: string) => emu.spec(id, { args, rootPath: rootfs, annotations: ann(type), hostname: "qpod-host" });
    const ids = ["qpod", "qc1", "qc2"];
    let pod: Awaited<ReturnType<typeof emu.startShim>> | undefined;
    try {
      pod = await emu.startShim("qpod", emu.bundle("qpod", spec("qpod", ["/bin/sleep", "300"], "sandbox")));
      await pod.task.Create({ id: "qpod", bundle: pod.bundle });
      await pod.task.Start({ id: "qpod" });
      const outs: string[] = [];
      for (const id of ["qc1", "qc2"]) {
        const t = await emu.startShim(id, emu.bundle(id, spec(id, ["/bin/sh", "-c", "cat /proc/sys/kernel/random/boot_id; hostname"], "container")));
        expect(t.address).toBe(pod.address); // one shim for the pod
        const io = emu.stdio(id);
        const c = await t.task.Create({ id, bundle: t.bundle, stdout: io.stdout, stderr: io.stderr });
        expect(c.pid).toBe((await pod.task.State({ id: "qpod" })).pid); // the one QEMU
        await t.task.Start({ id });
        expect((await t.task.Wait({ id })).exitStatus).toBe(0);
        await io.drained();
        outs.push(io.out());
        await t.task.Delete({ id });
      }
      expect(outs[0]).toBe(outs[1]); // same guest boot, same UTS namespace as the sandbox
      expect(outs[0]).toMatch(/^[0-9a-f-]{36}\nqpod-host\n$/);
      const vms = qemusUnder(emu.dir);
      expect(vms).toHaveLength(1);
      expect(vms[0].cmdline).toMatch(/(^|\s)-m 640(\s|$)/);
      await pod.task.Kill({ id: "qpod", signal: 9 });
      await pod.task.Wait({ id: "qpod" });
      await pod.task.Delete({ id: "qpod" });
      await pod.task.Shutdown({ id: "qpod" }).catch(() => {});
    } finally {
      // As containerd does after a failed create too: Shutdown, or the shim (with no task) stays.
      await pod?.task.Shutdown({ id: "qpod" }).catch(() => {});
      for (const id of ids.reverse()) await emu.runner.delete(id, path.join(emu.bundlesDir(), id)).catch(() => {});
      await emu.close();
    }
    await until("the pod's QEMU to go", async () => qemusUnder(emu.dir).length === 0, 10_000);
    await expectNoLeaks([emu.dir], [emu.dir]);
    fs.rmSync(emu.dir, { recursive: true, force: true });
  }, 180_000);

  it("a boot that misses its deadline fails the create and leaves no QEMU", async () => {
    const r = await ctd.ctr(["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", shortBootConfig, "--rootfs", rootfs, "q4", "/bin/true"], { timeoutMs: 60_000 });
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/boot deadline of 400 ms/);
    await ctd.ctr(["container", "rm", "q4"]);
  }, 90_000);
});
