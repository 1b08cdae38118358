// The QEMU hypervisor's pure parts: command line, QMP client (against a fake
// QMP server), [qemu] config and the accelerator decision. The image
// builder's are in guest-image.test.ts.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { BOOT_SPEED_PARAMS, kernelCommandLine, qemuArgs, type QemuSpec } from "../../src/hypervisor/qemu/cmdline";
import { QmpClient, QmpError } from "../../src/hypervisor/qemu/qmp";
import { parseQemuConfig, QEMU_DEFAULTS } from "../../src/hypervisor/qemu/config";
import { chooseAccel, kvmRuledOut } from "../../src/hypervisor/qemu/accel";
import { guestInit, AGENT_PORT_NAME, USR_SHARE_TAG } from "../../src/hypervisor/qemu/guest-init";
import { AGENT_READY_LINE } from "../../src/hypervisor/qemu/vm";
import { SERIAL_READY_MSG } from "../../src/mock-agent/serial";
import { vsockCid, sandboxSettings } from "../../src/hypervisor/qemu";
import { loadConfig } from "../../src/shim/config";
import { native } from "../../src/native";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "qemu-unit-"));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const base: QemuSpec = {
  machine: "q35",
  accel: "tcg",
  memoryMb: 512,
  vcpus: 1,
  kernel: "/c/vmlinux",
  initrd: "/c/initrd.lz4",
  agentSocket: "/r/agent.sock",
  qmpSocket: "/r/qmp.sock",
  consoleSocket: "/r/console.sock",
};

/** The value following each occurrence of flag. */
const values = (args: string[], flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]] : []));

describe("QEMU command line", () => {
  it("q35: PCI virtio-serial with agent.channel.0 on a unix chardev, QMP, console, direct kernel boot", () => {
    const a = qemuArgs({ ...base, sharedDir: "/r/shared" });
    expect(values(a, "-machine")).toEqual(["q35"]);
    expect(values(a, "-accel")).toEqual(["tcg"]);
    expect(values(a, "-cpu")).toEqual(["max"]);
    expect(values(a, "-kernel")).toEqual(["/c/vmlinux"]);
    expect(values(a, "-initrd")).toEqual(["/c/initrd.lz4"]);
    expect(values(a, "-m")).toEqual(["512"]);
    expect(values(a, "-qmp")).toEqual(["unix:/r/qmp.sock,server=on,wait=off"]);
    expect(a).toContain("-nodefaults");
    expect(a).toContain("-no-reboot");
    const devs = values(a, "-device");
    expect(devs).toContain("virtio-serial-pci,id=serial0");
    expect(devs).toContain(`virtserialport,bus=serial0.0,chardev=charch0,id=channel0,name=${AGENT_PORT_NAME}`);
    expect(values(a, "-chardev")).toContain("socket,id=charch0,path=/r/agent.sock,server=on,wait=off");
    expect(values(a, "-fsdev")).toEqual(["local,id=extra-9p-kataShared,path=/r/shared,security_model=none,multidevs=remap"]);
    expect(devs).toContain("virtio-9p-pci,fsdev=extra-9p-kataShared,mount_tag=kataShared");
    expect(devs.some((d) => d.startsWith("vhost-vsock"))).toBe(false);
  });

  it("microvm: MMIO devices and tsc_early_khz, which its missing PIT/HPET needs", () => {
    const a = qemuArgs({ ...base, machine: "microvm", sharedDir: "/s", tscKhz: 2_450_123.4 });
    expect(values(a, "-machine")).toEqual(["microvm"]);
    const devs = values(a, "-device");
    expect(devs).toContain("virtio-serial-device,id=serial0");
    expect(devs).toContain("virtio-9p-device,fsdev=extra-9p-kataShared,mount_tag=kataShared");
    expect(values(a, "-append")[0]).toContain("tsc_early_khz=2450123");
    expect(kernelCommandLine({ machine: "q35", tscKhz: 1000 })).not.toContain("tsc_early_khz");
  });

  it("KVM uses the host CPU; a vsock CID adds vhost-vsock with that guest-cid", () => {
    const a = qemuArgs({ ...base, accel: "kvm", vsockCid: 7 });
    expect(values(a, "-cpu")).toEqual(["host"]);
    expect(values(a, "-device")).toContain("vhost-vsock-pci,id=vsock-7,guest-cid=7");
    expect(() => qemuArgs({ ...base, vsockCid: 2 })).toThrow(/3\.\.4294967294/);
    const cid = vsockCid("sandbox-a");
    expect(cid).toBeGreaterThanOrEqual(3);
    expect(cid).toBeLessThan(0xffffffff);
    expect(vsockCid("sandbox-a")).toBe(cid);
    expect(vsockCid("sandbox-b")).not.toBe(cid);
  });

  it("a warm VM's empty PCIe root ports, for the NICs plugged in at handout: q35 only", () => {
    const a = qemuArgs({ ...base, hotplugPorts: 2 });
    expect(values(a, "-device").filter((d) => d.startsWith("pcie-root-port"))).toEqual(["pcie-root-port,id=hp0,bus=pcie.0,chassis=1", "pcie-root-port,id=hp1,bus=pcie.0,chassis=2"]);
    expect(values(qemuArgs(base), "-device").some((d) => d.startsWith("pcie-root-port"))).toBe(false);
    expect(() => qemuArgs({ ...base, machine: "microvm", hotplugPorts: 1 })).toThrow(/need machine q35/);
    expect(() => qemuArgs({ ...base, hotplugPorts: 9 })).toThrow(/0\.\.8/);
  });

  it("kernel parameters are single printable words, after shimlab's fixed ones", () => {
    const line = kernelCommandLine({ machine: "q35", kernelParams: ["shimlab.runtime=host", "shimlab.debug"] });
    expect(line).toBe(`console=ttyS0 panic=-1 quiet reboot=t ${BOOT_SPEED_PARAMS.join(" ")} shimlab.runtime=host shimlab.debug`);
    expect(() => kernelCommandLine({ machine: "q35", kernelParams: ["a b"] })).toThrow(/one printable word/);
    expect(() => kernelCommandLine({ machine: "q35", kernelParams: ["x\ny"] })).toThrow();
  });

  it("refuses paths QEMU's option syntax would split, and bad sizes", () => {
    expect(() => qemuArgs({ ...base, agentSocket: "/r/a,b.sock" })).toThrow(/comma/);
    expect(() => qemuArgs({ ...base, kernel: "relative/vmlinux" })).toThrow(/absolute/);
    expect(() => qemuArgs({ ...base, memoryMb: 64 })).toThrow(/at least 128/);
    expect(() => qemuArgs({ ...base, vcpus: 0 })).toThrow(/vcpus/);
    expect(() => qemuArgs({ ...base, machine: "pc" as "q35" })).toThrow(/q35 or microvm/);
    expect(() => qemuArgs({ ...base, accel: "hvf" as "tcg" })).toThrow(/kvm or tcg/);
  });

  it("the guest init looks for the port the command line names, and the host waits for the line the agent logs", () => {
    const init = guestInit(["virtio_ring", "virtio"]);
    expect(init).toContain(`= "${AGENT_PORT_NAME}"`);
    expect(init).toContain("for m in virtio_ring virtio; do");
    expect(init.startsWith("#!/bin/busybox sh\n")).toBe(true);
    expect(AGENT_READY_LINE).toBe(SERIAL_READY_MSG);
    const r = spawnSync("sh", ["-n"], { input: init });
    expect(r.status, r.stderr?.toString()).toBe(0);
    expect(init).not.toContain(USR_SHARE_TAG);
  });

  it("with /usr on a share, init mounts it read-only after the modules and before anything runs from it", () => {
    const init = guestInit([], { usrShare: true });
    const mount = init.indexOf(`mount -t 9p -o trans=virtio,version=9p2000.L,ro,`);
    expect(mount).toBeGreaterThan(init.indexOf("for m in ; do"));
    expect(init.slice(mount)).toMatch(new RegExp(`^mount -t 9p -o \\S+ ${USR_SHARE_TAG} /usr \\|\\| \\{ echo .*; poweroff -f; \\}\n`));
    expect(mount).toBeLessThan(init.indexOf("/usr/bin/node"));
    expect(spawnSync("sh", ["-n"], { input: init }).status).toBe(0);
    // an empty module list is still a loop sh accepts (shimlab's kernel has everything built in)
    const r = spawnSync("sh", ["-c", "for m in ; do echo x; done; echo ok"], { encoding: "utf8" });
    expect(r.stdout).toBe("ok\n");
  });

  it("shares the image's /usr read-only under its own tag, on PCI or MMIO", () => {
    for (const [machine, dev] of [["q35", "virtio-9p-pci"], ["microvm", "virtio-9p-device"]] as const) {
      const a = qemuArgs({ ...base, machine, usrDir: "/c/img/usr" });
      expect(values(a, "-fsdev")).toContain("local,id=usr,path=/c/img/usr,security_model=none,readonly=on");
      expect(values(a, "-device")).toContain(`${dev},fsdev=usr,mount_tag=${USR_SHARE_TAG}`);
    }
    expect(values(qemuArgs(base), "-fsdev")).toEqual([]);
    expect(() => qemuArgs({ ...base, usrDir: "/c/a,b" })).toThrow(/comma/);
  });
});

/** A fake QEMU QMP endpoint: greets, wants qmp_capabilities first, answers by a table. */
async function fakeQmp(answer: (cmd: string, args: unknown) => object | null, o: { greet?: boolean; onConnect?: (s: net.Socket) => void } = {}) {
  const sock = path.join(tmpdir(), "qmp.sock");
  const seen: string[] = [];
  const conns: net.Socket[] = [];
  const srv = net.createServer((s) => {
    conns.push(s);
    o.onConnect?.(s);
    if (o.greet !== false) s.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: "" }, capabilities: [] } }) + "\r\n");
    let negotiated = false;
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        seen.push(msg.execute);
        if (!negotiated && msg.execute !== "qmp_capabilities") {
          s.write(JSON.stringify({ id: msg.id, error: { class: "CommandNotFound", desc: "Expecting capabilities negotiation with 'qmp_capabilities'" } }) + "\r\n");
          continue;
        }
        if (msg.execute === "qmp_capabilities") {
          negotiated = true;
          s.write(JSON.stringify({ return: {}, id: msg.id }) + "\r\n");
          continue;
        }
        const a = answer(msg.execute, msg.arguments);
        if (a) s.write(JSON.stringify({ ...a, id: msg.id }) + "\r\n");
        if (msg.execute === "quit") {
          s.write(JSON.stringify({ event: "SHUTDOWN", data: { guest: false, reason: "host-qmp-quit" }, timestamp: { seconds: 1, microseconds: 2 } }) + "\r\n");
          s.end();
        }
      }
    });
  });
  await new Promise<void>((r) => srv.listen(sock, r));
  cleanups.push(() => {
    conns.forEach((c) => c.destroy());
    return new Promise((r) => srv.close(r));
  });
  return { sock, seen, conns };
}

describe("QMP client", () => {
  it("getfd: the command's bytes go out with the descriptor, on the connection's own socket, and the reply resolves it", async () => {
    const q = await fakeQmp((cmd) => (cmd === "getfd" ? { return: {} } : null));
    const c = await QmpClient.connect(q.sock);
    cleanups.push(() => c.close());
    const sent: { fd: number; text: string; passed: number }[] = [];
    const fd = fs.openSync("/dev/null", "r");
    cleanups.push(() => fs.closeSync(fd));
    await c.getfd("fd-tap0", fd, (sockFd, data, passed) => {
      sent.push({ fd: sockFd, text: data.toString(), passed });
      native().sendWithFd(sockFd, data, passed);
    });
    expect(sent).toHaveLength(1);
    expect(sent[0].passed).toBe(fd);
    expect(JSON.parse(sent[0].text)).toMatchObject({ execute: "getfd", arguments: { fdname: "fd-tap0" } });
    expect(q.seen).toEqual(["qmp_capabilities", "getfd"]);
    // a sender that fails fails the call, and the connection serves on
    await expect(c.getfd("x", fd, () => { throw new Error("sendmsg: EAGAIN"); })).rejects.toThrow(/QMP getfd: sendmsg: EAGAIN/);
  });

  it("negotiates capabilities, then query-status and quit; events arrive beside replies", async () => {
    const q = await fakeQmp((cmd) => (cmd === "query-status" ? { return: { status: "running", running: true, singlestep: false } } : cmd === "quit" ? { return: {} } : null));
    const c = await QmpClient.connect(q.sock);
    cleanups.push(() => c.close());
    expect(c.version).toEqual({ major: 7, minor: 2, micro: 22 });
    expect(await c.queryStatus()).toMatchObject({ status: "running", running: true });
    const events: string[] = [];
    c.on("event", (e) => events.push(e.event));
    const closed = new Promise((r) => c.once("close", r));
    await c.quit();
    await closed;
    expect(events).toEqual(["SHUTDOWN"]);
    expect(q.seen).toEqual(["qmp_capabilities", "query-status", "quit"]);
    expect(c.isClosed).toBe(true);
    await expect(c.queryStatus()).rejects.toThrow(/connection closed/);
  });

  it("turns QMP errors into QmpError with the error class", async () => {
    const q = await fakeQmp((cmd) => ({ error: { class: "CommandNotFound", desc: `The command ${cmd} has not been found` } }));
    const c = await QmpClient.connect(q.sock);
    cleanups.push(() => c.close());
    const e = await c.execute("no-such-thing").catch((x) => x);
    expect(e).toBeInstanceOf(QmpError);
    expect(e.errorClass).toBe("CommandNotFound");
    expect(e.message).toMatch(/no-such-thing/);
  });

  it("times out a command with no reply, and ignores the late reply", async () => {
    let late: (() => void) | null = null;
    const q = await fakeQmp(() => null, {
      onConnect: (s) => (late = () => s.write(JSON.stringify({ return: { status: "running", running: true }, id: "shimlab-2" }) + "\n")),
    });
    const c = await QmpClient.connect(q.sock);
    cleanups.push(() => c.close());
    await expect(c.queryStatus(100)).rejects.toThrow(/no reply within 100 ms/);
    late!();
    await new Promise((r) => setTimeout(r, 50));
    expect(c.isClosed).toBe(false);
  });

  it("fails within its deadline when QEMU never greets, and on a socket that is not there", async () => {
    const q = await fakeQmp(() => null, { greet: false });
    const t0 = Date.now();
    await expect(QmpClient.connect(q.sock, 200)).rejects.toThrow(/no greeting within 200 ms/);
    expect(Date.now() - t0).toBeLessThan(2000);
    await expect(QmpClient.connect(path.join(tmpdir(), "absent.sock"), 200)).rejects.toThrow(/ENOENT/);
  });

  it("fails pending commands when QEMU goes away, and closes on garbage", async () => {
    const q = await fakeQmp(() => null);
    const c = await QmpClient.connect(q.sock);
    const p = c.queryStatus(5000);
    q.conns[0].destroy();
    await expect(p).rejects.toThrow(/closed by QEMU/);
    const q2 = await fakeQmp(() => null);
    const c2 = await QmpClient.connect(q2.sock);
    const p2 = c2.queryStatus(5000);
    q2.conns[0].write("this is not json\n");
    await expect(p2).rejects.toThrow(/not JSON/);
    expect(c2.isClosed).toBe(true);
  });
});

describe("[qemu] configuration", () => {
  it("defaults, and every key checked", () => {
    expect(parseQemuConfig({}, "t")).toEqual({ ...QEMU_DEFAULTS, kernel: undefined, initrd: undefined, cacheDir: undefined });
    const c = parseQemuConfig({ machine: "microvm", accel: "tcg", memory_mb: 768, vcpus: 2, kernel: "/k", initrd: "/i", boot_timeout_ms: 5000, kernel_params: ["a=b"], jitless: true }, "t");
    expect(c).toMatchObject({ machine: "microvm", accel: "tcg", memoryMb: 768, vcpus: 2, kernel: "/k", initrd: "/i", bootTimeoutMs: 5000, kernelParams: ["a=b"], jitless: true });
    expect(QEMU_DEFAULTS).toMatchObject({ guestKernel: "auto", guestUsr: "share" });
    expect(parseQemuConfig({ guest_kernel: "debian", guest_usr: "initramfs" }, "t")).toMatchObject({ guestKernel: "debian", guestUsr: "initramfs" });
    expect(parseQemuConfig({ guest_runtime: "crun" }, "t")).toMatchObject({ guestRuntime: "crun" });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ machine: "pc" }, /qemu.machine = "pc": want "q35" or "microvm"/],
      [{ accel: "hvf" }, /qemu.accel/],
      [{ memory_mb: 64 }, /qemu.memory_mb = 64: want an integer in 128/],
      [{ vcpus: 1.5 }, /qemu.vcpus/],
      [{ kernel: "/k" }, /go together/],
      [{ kernel: "k", initrd: "i" }, /absolute path/],
      [{ boot_timeout_ms: "fast" }, /qemu.boot_timeout_ms/],
      [{ guest_runtime: "youki" }, /qemu.guest_runtime = "youki": want "host", "runc" or "crun"/],
      [{ guest_kernel: "custom" }, /qemu.guest_kernel = "custom": want "auto", "shimlab" or "debian"/],
      [{ guest_usr: "disk" }, /qemu.guest_usr = "disk": want "share" or "initramfs"/],
      [{ kernel_params: ["two words"] }, /single printable words/],
      [{ jitless: "yes" }, /true or false/],
      [{ memroy_mb: 512 }, /unknown key qemu.memroy_mb/],
    ];
    for (const [raw, re] of bad) expect(() => parseQemuConfig(raw, "t"), JSON.stringify(raw)).toThrow(re);
  });

  it("the shim refuses a bad [qemu] table when it reads the file, as InvalidArgument", () => {
    const d = tmpdir();
    const f = path.join(d, "c.toml");
    fs.writeFileSync(f, 'hypervisor = "qemu"\n[qemu]\nmachine = "pc"\n');
    expect(() => loadConfig(f, {})).toThrow(/machine/);
    fs.writeFileSync(f, 'hypervisor = "qemu"\n[qemu]\nmachine = "microvm"\n');
    const cfg = loadConfig(f, {});
    expect(cfg.hypervisorKind).toBe("qemu");
    expect(cfg.qemu).toEqual({ machine: "microvm" });
  });
});

describe("per-sandbox settings from annotations", () => {
  const A = (k: string) => `io.katacontainers.config.hypervisor.${k}`;
  const cfg = parseQemuConfig({ enable_annotations: ["default_memory", "default_vcpus", "kernel_params", "machine_type", "kernel"], valid_kernel_paths: ["/opt/kernels/*"], kernel_params: ["base=1"] }, "t");

  it("applies only what enable_annotations allows", () => {
    expect(sandboxSettings(cfg, undefined)).toEqual(cfg);
    expect(sandboxSettings(cfg, { "io.kubernetes.cri.container-type": "sandbox" })).toEqual(cfg);
    const s = sandboxSettings(cfg, { [A("default_memory")]: "768", [A("default_vcpus")]: "2", [A("machine_type")]: "microvm", [A("kernel_params")]: "  a=b   c " });
    expect(s).toMatchObject({ memoryMb: 768, vcpus: 2, machine: "microvm", kernelParams: ["base=1", "a=b", "c"] });
    expect(() => sandboxSettings(QEMU_DEFAULTS, { [A("default_memory")]: "768" })).toThrow(/not enabled/);
    expect(() => sandboxSettings(cfg, { [A("path")]: "/usr/bin/qemu-system-x86_64" })).toThrow(/not enabled/);
  });

  it("refuses host paths outside valid_*_paths and values a guest cannot boot with", () => {
    expect(sandboxSettings(cfg, { [A("kernel")]: "/opt/kernels/vmlinux-6.1" }).kernel).toBe("/opt/kernels/vmlinux-6.1");
    expect(() => sandboxSettings(cfg, { [A("kernel")]: "/etc/shadow" })).toThrow(/valid_kernel_paths/);
    expect(() => sandboxSettings(cfg, { [A("default_memory")]: "64" })).toThrow(/at least 128/);
    expect(() => sandboxSettings(cfg, { [A("default_vcpus")]: "200" })).toThrow(/at most 64/);
    expect(() => sandboxSettings(cfg, { [A("machine_type")]: "pc" })).toThrow(/q35/);
    expect(() => parseQemuConfig({ enable_annotations: ["("] }, "t")).toThrow(/not a regular expression/);
    expect(() => parseQemuConfig({ valid_kernel_paths: "/x" }, "t")).toThrow(/list of non-empty strings/);
  });
});

describe("accelerator choice", () => {
  const capable = { devKvm: true, pvm: false, hwVirt: true };

  it("rules KVM out without a probe where it cannot work", async () => {
    expect(kvmRuledOut({ ...capable, devKvm: false })).toMatch(/not usable/);
    expect(kvmRuledOut({ ...capable, pvm: true })).toMatch(/PVM/);
    expect(kvmRuledOut({ ...capable, hwVirt: false })).toMatch(/vmx\/svm/);
    let probed = 0;
    const r = await chooseAccel("auto", { cacheDir: tmpdir(), imageKey: "k", facts: { ...capable, pvm: true }, probe: async () => (++probed, true) });
    expect(r.accel).toBe("tcg");
    expect(probed).toBe(0);
  });

  it("on a capable host a probe boot decides, once per image", async () => {
    const dir = tmpdir();
    let probed = 0;
    const fail = async () => (++probed, false);
    expect((await chooseAccel("auto", { cacheDir: dir, imageKey: "k1", facts: capable, probe: fail })).accel).toBe("tcg");
    expect((await chooseAccel("auto", { cacheDir: dir, imageKey: "k1", facts: capable, probe: fail })).why).toMatch(/earlier/);
    expect(probed).toBe(1);
    const ok = await chooseAccel("auto", { cacheDir: dir, imageKey: "k2", facts: capable, probe: async () => true });
    expect(ok).toEqual({ accel: "kvm", why: "probe boot worked" });
    const thrown = await chooseAccel("auto", { cacheDir: dir, imageKey: "k3", facts: capable, probe: async () => Promise.reject(new Error("boom")) });
    expect(thrown.accel).toBe("tcg");
    expect((await chooseAccel("tcg", { cacheDir: dir, imageKey: "k2", facts: capable, probe: async () => true })).accel).toBe("tcg");
  });
});
