// A factory's VM rehearses a pod's work before it serves (src/mock-agent/rehearse.ts): one
// throwaway container through its runtime and the network read with `ip`, then nothing of it left.
// A fake runtime stands in for crun; the guest-side wiring (kernel parameter → init → agent flag)
// and the warm VM's spec are checked as text and data.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { rehearse, rehearsalSpec, REHEARSAL_ID } from "../../src/mock-agent/rehearse";
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

class FakeRuntime {
  readonly name = "crun" as const;
  readonly isolated = true;
  calls: string[] = [];
  created: ContainerConfig | null = null;
  busyboxAtCreate: fs.Stats | null = null;
  failCreate = false;
  /** When false, the container never exits until destroyed. */
  exits = true;
  private release: (code: number) => void = () => {};

  async create(c: ContainerConfig): Promise<RuntimeProcess> {
    this.calls.push(`create ${c.id}`);
    if (this.failCreate) throw new Error("crun create: no cgroup for you");
    this.created = c;
    this.busyboxAtCreate = fs.statSync(path.join(c.spec.root!.path, "bin", "busybox"));
    const exit = new Promise<number>((r) => (this.release = r));
    return { pid: 4242, stdin: null, stdout: null, stderr: null, terminal: false, resize() {}, closeStdin() {}, exit };
  }
  async start(id: string): Promise<null> {
    this.calls.push(`start ${id}`);
    if (this.exits) setTimeout(() => this.release(0), 5);
    return null;
  }
  async destroy(id: string): Promise<void> {
    this.calls.push(`destroy ${id}`);
    this.release(137);
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
  it("runs one pause-like container through the runtime, reads the network, and leaves nothing behind", async () => {
    const s = setup();
    await rehearse(s.opts);
    expect(s.rt.calls).toEqual([`create ${REHEARSAL_ID}`, `start ${REHEARSAL_ID}`, `destroy ${REHEARSAL_ID}`, `removeCgroup /${REHEARSAL_ID}`]);
    expect(s.net.calls).toEqual(["interfaces", "routes"]);
    const c = s.rt.created!;
    expect(c.cgroupsPath).toBe(`/${REHEARSAL_ID}`);
    expect(c.spec.root).toEqual({ path: path.join(s.state, REHEARSAL_ID, "rootfs"), readonly: true });
    // the guest's own busybox, linked (not copied) into the rootfs
    expect(s.rt.busyboxAtCreate!.ino).toBe(fs.statSync(s.busybox).ino);
    expect(c.spec.process!.args).toEqual(["/bin/busybox", "true"]);
    // a pod's namespaces but the network, which in a VM is the guest's own
    expect(c.spec.linux!.namespaces!.map((n) => n.type).sort()).toEqual(["ipc", "mount", "pid", "uts"]);
    expect(fs.readdirSync(s.state)).toEqual(["busybox"]);
    const done = s.log.find((l) => l.msg === "rehearsed");
    expect(done?.fields.exitCode).toBe(0);
    expect(s.log.filter((l) => l.level === "warn")).toEqual([]);
  });

  it("a runtime that fails is logged, and the VM is left as clean as after a rehearsal", async () => {
    const s = setup();
    s.rt.failCreate = true;
    await rehearse(s.opts);
    expect(s.log.find((l) => l.msg === "rehearsal failed")?.fields.error).toMatch(/no cgroup for you/);
    expect(s.rt.calls).toEqual([`create ${REHEARSAL_ID}`, `destroy ${REHEARSAL_ID}`, `removeCgroup /${REHEARSAL_ID}`]);
    expect(s.net.calls).toEqual([]);
    expect(fs.readdirSync(s.state)).toEqual(["busybox"]);
  });

  it("a container that never exits is killed at the deadline, and the agent goes on to serve", async () => {
    const s = setup();
    s.rt.exits = false;
    const t0 = Date.now();
    await rehearse({ ...s.opts, timeoutMs: 150 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(s.log.find((l) => l.msg === "rehearsal failed")?.fields.error).toMatch(/not done in 150 ms/);
    expect(s.rt.calls).toContain(`destroy ${REHEARSAL_ID}`);
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
const rt = { name: "crun", isolated: true,
  create: async () => ({ pid: 1, stdin: null, stdout: null, stderr: null, terminal: false, resize() {}, closeStdin() {},
    exit: new Promise((r) => setTimeout(() => r(0), 300).unref()) }),
  start: async () => null, destroy: async () => {}, removeCgroup() {} };
const log = { info: (m) => console.log(m), warn: (m, f) => console.log(m, f && f.error), debug() {}, error() {} };
rehearse({ runtime: rt, network: null, stateDir: ${JSON.stringify(s.state)}, busybox: ${JSON.stringify(s.busybox)}, logger: log });`,
    );
    const r = spawnSync(process.execPath, [js], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("rehearsed\n");
  });

  it("what it runs asks for no network, device or privilege a pause container would not", () => {
    const spec = rehearsalSpec("/r");
    expect(spec.process!.user).toEqual({ uid: 65535, gid: 65535 });
    expect(spec.process!.noNewPrivileges).toBe(true);
    expect(spec.process!.capabilities!.bounding).not.toContain("CAP_SYS_ADMIN");
    expect(spec.linux!.devices).toBeUndefined();
    expect(spec.mounts!.every((m) => !m.type || ["proc", "tmpfs", "devpts", "mqueue", "sysfs"].includes(m.type))).toBe(true);
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
