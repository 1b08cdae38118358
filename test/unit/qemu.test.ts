// The QEMU hypervisor's pure parts: command line, QMP client (against a fake
// QMP server), [qemu] config, the accelerator decision, and the image
// builder's pieces (module order, require closure, cpio, PVH note).
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
import { moduleOrder, requireClosure } from "../../src/hypervisor/qemu/image";
import { CpioWriter, S_IFDIR, S_IFREG } from "../../src/hypervisor/qemu/cpio";
import { findKernel, hasPvhNote } from "../../src/hypervisor/qemu/kernel";
import { guestInit, AGENT_PORT_NAME, USR_SHARE_TAG } from "../../src/hypervisor/qemu/guest-init";
import { buildGuestKernel, findGuestKernel, findKernelSources, GUEST_KERNEL_PREFIX, guestConfigPath, kernelDirPrefix, missingBuildTools, parseFragment, unmetSettings } from "../../src/hypervisor/qemu/guest-kernel";
import { AGENT_READY_LINE } from "../../src/hypervisor/qemu/vm";
import { SERIAL_READY_MSG } from "../../src/mock-agent/serial";
import { vsockCid, sandboxSettings, guestKernel } from "../../src/hypervisor/qemu";
import { loadConfig } from "../../src/shim/config";

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
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ machine: "pc" }, /qemu.machine = "pc": want "q35" or "microvm"/],
      [{ accel: "hvf" }, /qemu.accel/],
      [{ memory_mb: 64 }, /qemu.memory_mb = 64: want an integer in 128/],
      [{ vcpus: 1.5 }, /qemu.vcpus/],
      [{ kernel: "/k" }, /go together/],
      [{ kernel: "k", initrd: "i" }, /absolute path/],
      [{ boot_timeout_ms: "fast" }, /qemu.boot_timeout_ms/],
      [{ guest_runtime: "crun" }, /qemu.guest_runtime/],
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

describe("guest image pieces", () => {
  it("orders modules after their dependencies, from modules.dep", () => {
    const dep = [
      "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko kernel/fs/fscache/fscache.ko",
      "kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko",
      "kernel/fs/netfs/netfs.ko:",
      "kernel/net/9p/9pnet.ko:",
      "kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
      "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio_ring.ko:",
      "kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
    ].join("\n");
    const order = moduleOrder(dep, ["virtio_console", "9pnet_virtio", "9p"]).map((m) => m.name);
    const before = (a: string, b: string) => expect(order.indexOf(a), `${a} before ${b}`).toBeLessThan(order.indexOf(b));
    before("virtio_ring", "virtio");
    before("virtio", "virtio_console");
    before("9pnet", "9pnet_virtio");
    before("netfs", "fscache");
    before("fscache", "9p");
    expect(new Set(order).size).toBe(order.length);
    expect(() => moduleOrder(dep, ["vsock"])).toThrow(/vsock is not in modules.dep/);
  });

  it("collects a program's relative require closure and refuses packages the guest lacks", () => {
    const d = tmpdir();
    fs.mkdirSync(path.join(d, "a/lib"), { recursive: true });
    fs.writeFileSync(path.join(d, "a/main.js"), 'const x = require("./lib"); const fs = require("node:fs"); require("path");');
    fs.writeFileSync(path.join(d, "a/lib/index.js"), 'require("../util");');
    fs.writeFileSync(path.join(d, "a/util.js"), "");
    fs.writeFileSync(path.join(d, "a/unused.js"), "");
    expect(requireClosure(d, "a/main.js").map((f) => path.relative(d, f))).toEqual(["a/lib/index.js", "a/main.js", "a/util.js"]);
    fs.writeFileSync(path.join(d, "a/util.js"), 'require("smol-toml");');
    expect(() => requireClosure(d, "a/main.js")).toThrow(/requires the package smol-toml/);
  });

  it("writes a newc archive that cpio(1) reads back", async () => {
    const d = tmpdir();
    const out = fs.createWriteStream(path.join(d, "x.cpio"));
    const w = new CpioWriter(out);
    await w.add({ name: "bin", mode: S_IFDIR | 0o755 });
    await w.add({ name: "bin/hello", mode: S_IFREG | 0o755, data: Buffer.from("hi\n") });
    await w.add({ name: "odd", mode: S_IFREG | 0o644, data: Buffer.alloc(5, 0x61) });
    await w.finish();
    await new Promise((r) => out.end(r));
    expect(fs.statSync(path.join(d, "x.cpio")).size % 512).toBe(0);
    await expect(w.add({ name: "/abs", mode: S_IFREG })).rejects.toThrow(/relative/);
    const r = spawnSync("cpio", ["-it", "--quiet"], { input: fs.readFileSync(path.join(d, "x.cpio")) });
    if (r.error) return; // no cpio(1) here: the boot tests read the archive instead
    expect(r.stdout.toString().split("\n").filter(Boolean)).toEqual(["bin", "bin/hello", "odd"]);
  });

  it("finds the Xen PVH entry note QEMU needs to boot an ELF kernel", () => {
    const note = Buffer.alloc(12 + 4 + 4);
    note.writeUInt32LE(4, 0); // namesz
    note.writeUInt32LE(4, 4); // descsz
    note.writeUInt32LE(18, 8); // XEN_ELFNOTE_PHYS32_ENTRY
    note.write("Xen\0", 12);
    expect(hasPvhNote(Buffer.concat([Buffer.alloc(64), note]))).toBe(true);
    note.writeUInt32LE(17, 8);
    expect(hasPvhNote(Buffer.concat([Buffer.alloc(64), note]))).toBe(false);
  });
});

describe("shimlab's guest kernel", () => {
  it("kernel/guest.config parses: every line a setting, nothing as a module, no duplicates", () => {
    const text = fs.readFileSync(guestConfigPath(), "utf8");
    const f = parseFragment(text);
    const lines = text.split("\n").filter((l) => /^CONFIG_/.test(l));
    expect(f.size).toBe(lines.length);
    // what the guest cannot boot or run containers without
    for (const k of ["CONFIG_PVH", "CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_MMIO", "CONFIG_VIRTIO_CONSOLE", "CONFIG_9P_FS", "CONFIG_NET_9P_VIRTIO", "CONFIG_RD_LZ4", "CONFIG_DEVTMPFS", "CONFIG_BINFMT_SCRIPT", "CONFIG_MEMCG", "CONFIG_PID_NS", "CONFIG_SECCOMP_FILTER", "CONFIG_CGROUP_BPF"])
      expect(f.get(k), k).toBe("y");
    expect(f.get("CONFIG_MODULES")).toBeUndefined();
  });

  it("a fragment's bad line is reported with its line number; modules are refused", () => {
    expect(() => parseFragment("CONFIG_A=y\nCONFIG_B y\n")).toThrow(/guest.config:2: "CONFIG_B y"/);
    expect(() => parseFragment("CONFIG_VIRTIO_PCI=m\n")).toThrow(/no modules/);
    expect(parseFragment('# c\n# CONFIG_X is not set\nCONFIG_S="-a"\nCONFIG_N=64\n')).toEqual(new Map([["CONFIG_X", "n"], ["CONFIG_S", '"-a"'], ["CONFIG_N", "64"]]));
  });

  it("names the packages a build needs before it starts, not a failed make minutes in", async () => {
    const d = tmpdir();
    expect(missingBuildTools(d, d)).toEqual(["make", "gcc", "bc", "bison", "flex", "tar", "xz", "libelf's headers (gelf.h)"]);
    for (const b of ["make", "gcc", "bc", "bison", "flex", "tar", "xz"]) fs.writeFileSync(path.join(d, b), "");
    fs.writeFileSync(path.join(d, "gelf.h"), "");
    expect(missingBuildTools(d, d)).toEqual([]);
    await expect(buildGuestKernel({ cacheDir: d, source: path.join(d, "missing.tar.xz") })).rejects.toThrow();
    const src = path.join(d, "linux-source-6.1.tar.xz");
    fs.writeFileSync(src, "");
    const saved = process.env.PATH;
    process.env.PATH = path.join(d, "empty");
    try {
      await expect(buildGuestKernel({ cacheDir: d, source: src })).rejects.toThrow(/cannot build the guest kernel without make, gcc.*apt-get install linux-source-6.1 gcc make/);
    } finally {
      process.env.PATH = saved;
    }
  });

  it("names the settings Kconfig dropped, so a missing dependency fails the build instead of the boot", () => {
    const frag = parseFragment("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=\"x\"\n");
    expect(unmetSettings(frag, "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_D=\"x\"\n")).toEqual(["CONFIG_B=y (got not set)"]);
    expect(unmetSettings(frag, "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\nCONFIG_D=\"y\"\n")).toEqual(["CONFIG_C=n (got y)", 'CONFIG_D="x" (got "y")']);
  });

  it("is found in the cache by the fragment it was built from; a sandbox falls back to Debian's only on auto", () => {
    const cache = tmpdir();
    const cfg = path.join(cache, "guest.config");
    fs.writeFileSync(cfg, "CONFIG_PVH=y\n");
    expect(findGuestKernel(cache, cfg)).toBeNull();
    // a build for another fragment does not count
    const other = path.join(cache, "kernels", `${GUEST_KERNEL_PREFIX}000000000000-00000000`);
    fs.mkdirSync(other, { recursive: true });
    fs.writeFileSync(path.join(other, "vmlinux"), "");
    fs.writeFileSync(path.join(other, "kernel.json"), JSON.stringify({ version: "old", source: "s", buildMs: 1 }));
    expect(findGuestKernel(cache, cfg)).toBeNull();
    const mine = path.join(cache, "kernels", `${kernelDirPrefix(cfg)}12345678`);
    fs.mkdirSync(mine, { recursive: true });
    fs.writeFileSync(path.join(mine, "kernel.json"), JSON.stringify({ version: "6.1.192-shimlab", source: "s", buildMs: 1 }));
    expect(findGuestKernel(cache, cfg)).toBeNull(); // no vmlinux: a build that did not finish
    fs.writeFileSync(path.join(mine, "vmlinux"), "");
    expect(findGuestKernel(cache, cfg)).toEqual({ path: path.join(mine, "vmlinux"), version: "6.1.192-shimlab", modulesDir: null, elf: true });
    expect(() => guestKernel("shimlab", path.join(cache, "empty"))).toThrow(/shimlab image build --kernel/);
    if (findKernel()) expect(guestKernel("auto", path.join(cache, "empty")).modulesDir).not.toBeNull(); // Debian's, with its modules
    expect(findKernelSources(path.join(cache, "none"))).toEqual([]);
    fs.writeFileSync(path.join(cache, "linux-source-6.1.tar.xz"), "");
    fs.writeFileSync(path.join(cache, "linux-source-6.10.tar.xz"), "");
    fs.writeFileSync(path.join(cache, "linux-source-6.1.tar.xz.sig"), "");
    expect(findKernelSources(cache).map((p) => path.basename(p))).toEqual(["linux-source-6.1.tar.xz", "linux-source-6.10.tar.xz"]);
  });
});
