// A factory's VM rehearses a pod's work before it serves (src/mock-agent/rehearse.ts): a sandbox
// container and a container joining it through its runtime, on the VM's share when it has one, and the
// network read with `ip`, then nothing of it left. A fake runtime stands in for crun and a directory for
// the share; the guest-side wiring (kernel parameter → init → agent flag) and the warm VM's spec are
// checked as text and data. factory-qemu.test.ts sees a real guest rehearse on its share.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { rehearse, rehearsalSpec, cpuJiffies, untilIdle, REHEARSAL_ID, REHEARSAL_SANDBOX, REHEARSAL_CONTAINER, type RehearsalShare } from "../../src/mock-agent/rehearse";
import type { ContainerConfig, Runtime, RuntimeProcess } from "../../src/mock-agent/runtime/types";
import { guestInit, REHEARSE_PARAM, TCG_FIXED_LAYOUT_PARAM } from "../../src/hypervisor/qemu/guest-init";
import { warmSpec } from "../../src/hypervisor/qemu/warm";
import type { LaunchOptions } from "../../src/hypervisor/qemu/vm";

interface Logged {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

function logger(out: Logged[]) {
  const at = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => void out.push({ level, msg, fields });
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: () => logger(out) } as never;
}

const S = REHEARSAL_SANDBOX;
const C = REHEARSAL_CONTAINER;
const CGROUPS = [`/${REHEARSAL_ID}/${S}/${C}`, `/${REHEARSAL_ID}/${S}/${S}`, `/${REHEARSAL_ID}/${S}`, `/${REHEARSAL_ID}`].map((p) => `removeCgroup ${p}`);

class FakeRuntime {
  readonly name = "crun" as const;
  readonly isolated = true;
  calls: string[] = [];
  created = new Map<string, ContainerConfig>();
  /** What each container found at its create: its root's busybox, and the files its binds name (content). */
  seen = new Map<string, { busybox: fs.Stats; binds: Record<string, string> }>();
  failCreate = false;
  /** When false, the pod's container never exits until destroyed. */
  exits = true;
  private release = new Map<string, (code: number) => void>();
  private nextPid = 4242;

  async create(c: ContainerConfig): Promise<RuntimeProcess> {
    this.calls.push(`create ${c.id}`);
    if (this.failCreate) throw new Error("crun create: no cgroup for you");
    this.created.set(c.id, c);
    const binds = Object.fromEntries((c.spec.mounts ?? []).filter((m) => m.type === "bind").map((m) => [m.destination, fs.readFileSync(m.source!, "utf8")]));
    this.seen.set(c.id, { busybox: fs.statSync(path.join(c.spec.root!.path, "bin", "busybox")), binds });
    const exit = new Promise<number>((r) => this.release.set(c.id, r));
    return { pid: this.nextPid++, stdin: null, stdout: null, stderr: null, terminal: false, resize() {}, closeStdin() {}, exit };
  }
  async start(id: string): Promise<null> {
    this.calls.push(`start ${id}`);
    if (id === C && this.exits) setTimeout(() => this.release.get(id)!(0), 5);
    return null;
  }
  async signal(id: string, _p: unknown, sig: number): Promise<void> {
    this.calls.push(`signal ${id} ${sig}`);
    this.release.get(id)?.(128 + sig);
  }
  async destroy(id: string): Promise<void> {
    this.calls.push(`destroy ${id}`);
    this.release.get(id)?.(137);
  }
  removeCgroup(p: string): void {
    this.calls.push(`removeCgroup ${p}`);
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function setup() {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-rehearse-"));
  dirs.push(state);
  const busybox = path.join(state, "busybox");
  fs.writeFileSync(busybox, "#!/bin/sh\n", { mode: 0o755 });
  const log: Logged[] = [];
  const net = { calls: [] as string[], listInterfaces: async () => void net.calls.push("interfaces"), listRoutes: async () => void net.calls.push("routes") };
  const rt = new FakeRuntime();
  return { state, busybox, log, net, rt, opts: { runtime: rt as unknown as Runtime, network: net, stateDir: state, busybox, logger: logger(log) } };
}

describe("a warm VM's rehearsal", () => {
  it("runs a pod's sandbox and a container joining it through the runtime, reads the network, and leaves nothing behind", async () => {
    const s = setup();
    await rehearse(s.opts);
    expect(s.rt.calls).toEqual([`create ${S}`, `start ${S}`, `create ${C}`, `start ${C}`, `signal ${S} 9`, `destroy ${C}`, `destroy ${S}`, ...CGROUPS]);
    expect(s.net.calls).toEqual(["interfaces", "routes"]);
    const sbx = s.rt.created.get(S)!;
    const ctr = s.rt.created.get(C)!;
    // cgroups nested as the agent nests a pod's: <parent>/<sandbox>/<container>
    expect(sbx.cgroupsPath).toBe(`/${REHEARSAL_ID}/${S}/${S}`);
    expect(ctr.cgroupsPath).toBe(`/${REHEARSAL_ID}/${S}/${C}`);
    // the container joins the sandbox's IPC and UTS namespaces, by its pid, as CreateContainer does
    expect(sbx.join).toBeUndefined();
    expect(ctr.join).toEqual({ ipc: "/proc/4242/ns/ipc", uts: "/proc/4242/ns/uts" });
    const rootfs = path.join(s.state, REHEARSAL_ID, "rootfs");
    expect(sbx.spec.root).toEqual({ path: rootfs, readonly: true });
    expect(ctr.spec.root).toEqual({ path: rootfs, readonly: false });
    // the guest's own busybox, linked (not copied) into the rootfs when the rootfs is on its filesystem
    expect(s.rt.seen.get(S)!.busybox.ino).toBe(fs.statSync(s.busybox).ino);
    // CRI's files bound in: resolv.conf into the sandbox, hostname, hosts and resolv.conf into the container
    expect(Object.keys(s.rt.seen.get(S)!.binds)).toEqual(["/etc/resolv.conf"]);
    expect(s.rt.seen.get(C)!.binds).toEqual({ "/etc/hostname": `${REHEARSAL_ID}\n`, "/etc/hosts": "127.0.0.1 localhost\n", "/etc/resolv.conf": "nameserver 127.0.0.1\n" });
    expect(fs.readdirSync(s.state)).toEqual(["busybox"]);
    const done = s.log.find((l) => l.msg === "rehearsed");
    expect(done?.fields).toMatchObject({ exitCode: 0, shared: false });
    expect(s.log.filter((l) => l.level === "warn")).toEqual([]);
  });

  it("on the VM's share when it has one: the root filesystem and the files there, busybox copied; the share emptied, then unmounted", async () => {
    const s = setup();
    const calls: string[] = [];
    // a directory stands in for the 9p mount; another filesystem, as far as a hard link goes
    const share: RehearsalShare = {
      mount: (d) => void calls.push(`mount ${path.relative(s.state, d)}`),
      unmount: (d) => void calls.push(`unmount ${path.relative(s.state, d)} ${JSON.stringify(fs.readdirSync(d))}`),
    };
    const link = fs.linkSync;
    (fs as { linkSync: unknown }).linkSync = () => {
      throw Object.assign(new Error("EXDEV: cross-device link not permitted"), { code: "EXDEV" });
    };
    try {
      await rehearse({ ...s.opts, share });
    } finally {
      (fs as { linkSync: unknown }).linkSync = link;
    }
    const onShare = path.join(s.state, REHEARSAL_ID, "share", REHEARSAL_ID);
    expect(s.rt.created.get(S)!.spec.root!.path).toBe(path.join(onShare, "rootfs"));
    expect(s.rt.created.get(C)!.spec.mounts!.filter((m) => m.type === "bind").map((m) => path.dirname(m.source!))).toEqual([path.join(onShare, "etc"), path.join(onShare, "etc"), path.join(onShare, "etc")]);
    const bb = s.rt.seen.get(S)!.busybox;
    expect(bb.ino).not.toBe(fs.statSync(s.busybox).ino);
    expect(bb.mode & 0o777).toBe(0o755);
    // what the rehearsal put on the share is gone before it is unmounted
    expect(calls).toEqual([`mount ${REHEARSAL_ID}/share`, `unmount ${REHEARSAL_ID}/share []`]);
    expect(fs.readdirSync(s.state)).toEqual(["busybox"]);
    expect(s.log.find((l) => l.msg === "rehearsed")?.fields).toMatchObject({ exitCode: 0, shared: true });
  });

  it("a share that cannot be unmounted is said, and nothing is removed through it: it is the host's directory", async () => {
    const s = setup();
    let shareDir = "";
    const share: RehearsalShare = {
      // what the host has in its shared directory, seen through the mount
      mount: (d) => void fs.writeFileSync(path.join((shareDir = d), "host-file"), "x"),
      unmount: () => {
        throw new Error("EINVAL");
      },
    };
    await rehearse({ ...s.opts, share });
    expect(s.log.find((l) => l.msg === "rehearsal share not unmounted")?.fields.error).toBe("EINVAL");
    expect(fs.readdirSync(shareDir)).toEqual(["host-file"]);
  });

  it("a share that cannot be mounted is said, and the rest rehearsed on the guest's own filesystem", async () => {
    const s = setup();
    const share: RehearsalShare = {
      mount: () => {
        throw new Error("mount -t 9p kataShared: No such file or directory");
      },
      unmount: () => {
        throw new Error("not mounted");
      },
    };
    await rehearse({ ...s.opts, share });
    expect(s.log.find((l) => l.msg === "rehearsing without the VM's share")?.fields.error).toMatch(/No such file/);
    expect(s.rt.created.get(S)!.spec.root!.path).toBe(path.join(s.state, REHEARSAL_ID, "rootfs"));
    expect(s.log.find((l) => l.msg === "rehearsed")?.fields).toMatchObject({ exitCode: 0, shared: false });
    expect(s.log.filter((l) => l.level === "warn")).toEqual([]);
    expect(fs.readdirSync(s.state)).toEqual(["busybox"]);
  });

  it("rehearses the network's commands in a namespace of its own, closed after", async () => {
    const s = setup();
    const seen: string[] = [];
    const network = { ...s.net, rehearseIn: async (ns: string) => void seen.push(`rehearseIn ${ns}`) };
    const netns = async () => (seen.push("netns"), { path: "/proc/77/ns/net", close: async () => void seen.push("close") });
    await rehearse({ ...s.opts, network, netns });
    expect(s.net.calls).toEqual(["interfaces", "routes"]);
    expect(seen).toEqual(["netns", "rehearseIn /proc/77/ns/net", "close"]);
    expect(s.log.find((l) => l.msg === "rehearsed")?.fields.networkCommandsMs).toEqual(expect.any(Number));
    expect(s.log.filter((l) => l.level === "warn")).toEqual([]);
  });

  it("a namespace whose commands never end is closed at the deadline; one that cannot be made fails the rehearsal, and nothing is left", async () => {
    const s = setup();
    const seen: string[] = [];
    const stuck = { ...s.net, rehearseIn: () => new Promise<void>(() => {}) };
    await rehearse({ ...s.opts, network: stuck, netns: async () => ({ path: "/proc/77/ns/net", close: async () => void seen.push("close") }), timeoutMs: 150 });
    expect(seen).toEqual(["close"]);
    expect(s.log.find((l) => l.msg === "rehearsal failed")?.fields.error).toMatch(/not done in 150 ms/);
    const t = setup();
    await rehearse({ ...t.opts, network: { ...t.net, rehearseIn: async () => {} }, netns: async () => Promise.reject(new Error("busybox unshare -n exited")) });
    expect(t.log.find((l) => l.msg === "rehearsal failed")?.fields.error).toBe("busybox unshare -n exited");
    expect(fs.readdirSync(t.state)).toEqual(["busybox"]);
  });

  it("serves only once the guest has settled: the kernel's deferred teardown is not a pod's to share", async () => {
    const s = setup();
    const order: string[] = [];
    await rehearse({ ...s.opts, settle: async () => (order.push(`settle after ${s.rt.calls.at(-1)}`), { ms: 120, idle: true }) });
    expect(order).toEqual([`settle after removeCgroup /${REHEARSAL_ID}`]);
    expect(s.log.at(-1)).toEqual({ level: "info", msg: "guest settled", fields: { ms: 120, idle: true } });
    const t = setup();
    await rehearse({ ...t.opts, settle: async () => ({ ms: 3000, idle: false }) });
    expect(t.log.at(-1)).toMatchObject({ level: "warn", msg: "guest settled", fields: { idle: false } });
  });

  it("idle is two windows in a row with at least 90 % of the CPUs' jiffies idle, read from /proc/stat", async () => {
    expect(cpuJiffies("cpu  100 5 50 800 20 0 5 0 0 0\ncpu0 1 2 3\n")).toEqual({ idle: 820, total: 980 });
    expect(cpuJiffies().total).toBeGreaterThan(0);
    // busy (50 % idle), then idle, busy again, then idle twice
    const deltas = [0.5, 0.95, 0.5, 0.92, 1];
    let n = 0;
    let at = { idle: 0, total: 0 };
    const read = () => {
      const d = n === 0 ? 0 : deltas[n - 1];
      n++;
      at = { idle: at.idle + d * 100, total: at.total + (n === 1 ? 0 : 100) };
      return at;
    };
    const r = await untilIdle({ windowMs: 5, read });
    expect(r.idle).toBe(true);
    expect(n).toBe(6);
    // never idle: given up at maxMs
    const busy = await untilIdle({ windowMs: 5, maxMs: 40, read: (() => { let t = 0; return () => ({ idle: 0, total: (t += 100) }); })() });
    expect(busy.idle).toBe(false);
    expect(busy.ms).toBeGreaterThanOrEqual(40);
  });

  it("a runtime that fails is logged, and the VM is left as clean as after a rehearsal", async () => {
    const s = setup();
    s.rt.failCreate = true;
    await rehearse(s.opts);
    expect(s.log.find((l) => l.msg === "rehearsal failed")?.fields.error).toMatch(/no cgroup for you/);
    expect(s.rt.calls).toEqual([`create ${S}`, `destroy ${C}`, `destroy ${S}`, ...CGROUPS]);
    expect(s.net.calls).toEqual([]);
    expect(fs.readdirSync(s.state)).toEqual(["busybox"]);
  });

  it("a container that never exits is killed at the deadline, with its sandbox, and the agent goes on to serve", async () => {
    const s = setup();
    s.rt.exits = false;
    const t0 = Date.now();
    await rehearse({ ...s.opts, timeoutMs: 150 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(s.log.find((l) => l.msg === "rehearsal failed")?.fields.error).toMatch(/not done in 150 ms/);
    // and what was in flight stops there: no signal, no network read, no "rehearsed" after the failure
    await new Promise((r) => setTimeout(r, 50));
    expect(s.rt.calls.slice(-6)).toEqual([`destroy ${C}`, `destroy ${S}`, ...CGROUPS]);
    expect(s.net.calls).toEqual([]);
    expect(s.log.find((l) => l.msg === "rehearsed")).toBeUndefined();
    expect(fs.readdirSync(s.state)).toEqual(["busybox"]);
  });

  it("keeps the agent's process alive while nothing serves yet (a child's exit comes from a signal, which holds no handle)", () => {
    // In the agent the rehearsal runs before the serial port is served: nothing else holds the
    // event loop, and Node would exit 0 in the middle of it (the first guest boots did).
    const s = setup();
    const js = path.join(s.state, "child.js");
    fs.writeFileSync(
      js,
      `const { rehearse } = require(${JSON.stringify(path.resolve("dist/mock-agent/rehearse.js"))});
const exits = {};
const rt = { name: "crun", isolated: true,
  create: async (c) => ({ pid: 1, stdin: null, stdout: null, stderr: null, terminal: false, resize() {}, closeStdin() {},
    exit: new Promise((r) => { exits[c.id] = r; setTimeout(() => r(0), 300).unref(); }) }),
  start: async () => null, signal: async (id) => exits[id](137), destroy: async () => {}, removeCgroup() {} };
const log = { info: (m) => console.log(m), warn: (m, f) => console.log(m, f && f.error), debug() {}, error() {} };
rehearse({ runtime: rt, network: null, stateDir: ${JSON.stringify(s.state)}, busybox: ${JSON.stringify(s.busybox)}, logger: log });`,
    );
    const r = spawnSync(process.execPath, [js], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("rehearsed\n");
  });

  it("what it runs asks for no network, device or privilege a pod's containers would not", () => {
    const files = { hosts: "/s/hosts", hostname: "/s/hostname", resolvConf: "/s/resolv.conf" };
    for (const kind of ["sandbox", "container"] as const) {
      const spec = rehearsalSpec(kind, "/r", files);
      expect(spec.process!.capabilities!.bounding).not.toContain("CAP_SYS_ADMIN");
      expect(spec.linux!.devices).toBeUndefined();
      expect(spec.linux!.resources!.devices).toEqual([{ allow: false, access: "rwm" }]);
      expect(spec.linux!.namespaces!.some((n) => n.type === "network")).toBe(false);
      expect(spec.mounts!.every((m) => ["proc", "tmpfs", "devpts", "mqueue", "sysfs", "cgroup", "bind"].includes(m.type!))).toBe(true);
      // a bind names only the rehearsal's own files
      expect(spec.mounts!.filter((m) => m.type === "bind").every((m) => Object.values(files).includes(m.source!))).toBe(true);
    }
    const sbx = rehearsalSpec("sandbox", "/r", files);
    expect(sbx.process!.user).toEqual({ uid: 65535, gid: 65535 });
    expect(sbx.process!.noNewPrivileges).toBe(true);
    expect(sbx.mounts!.find((m) => m.destination === "/sys/fs/cgroup")).toBeUndefined();
    const ctr = rehearsalSpec("container", "/r", files);
    expect(ctr.linux!.namespaces!.map((n) => n.type).sort()).toEqual(["mount", "pid"]);
    expect(ctr.mounts!.find((m) => m.destination === "/sys/fs/cgroup")?.options).toContain("ro");
  });
});

describe("who rehearses", () => {
  const spec = (accel: "kvm" | "tcg") =>
    ({ machine: "q35", accel, memoryMb: 512, vcpus: 1, kernel: "/k", initrd: "/i", kernelParams: ["shimlab.runtime=crun"] }) as LaunchOptions["spec"];

  it("a factory's VM under TCG, whose pool time is free; not under KVM, where nothing is translated", () => {
    expect(warmSpec(spec("tcg")).kernelParams).toEqual(["shimlab.runtime=crun", REHEARSE_PARAM]);
    expect(warmSpec(spec("kvm")).kernelParams).toEqual(["shimlab.runtime=crun"]);
  });

  it("the guest's init hands the kernel parameter to the agent as --rehearse", () => {
    const init = guestInit([]);
    expect(init).toContain(`${REHEARSE_PARAM}) REHEARSE=--rehearse;;`);
    expect(init).toMatch(/exec \/usr\/bin\/node .* --guest .*\$REHEARSE\n$/);
    const r = spawnSync("sh", ["-n"], { input: init });
    expect(r.status).toBe(0);
    // the parameter is the kernel's own; nothing of shimlab's
    expect(TCG_FIXED_LAYOUT_PARAM).toBe("norandmaps");
  });
});
