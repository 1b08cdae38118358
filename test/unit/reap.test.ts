// What `delete` undoes after a dead shim, driver by driver, from the VM record
// alone: the reapers run on fake records in temp dirs, their commands caught by
// an injected runner, and real sleeping processes stand in for agents and QEMUs.
import { describe, it, expect, afterEach, vi } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import type { CommandRunner, ReapContext, VmRecord } from "../../src/hypervisor/types";
import { processStartTime } from "../../src/hypervisor/rundir";
import { reap as reapHostAgent } from "../../src/hypervisor/host-agent-reap";
import { reap as reapQemu } from "../../src/hypervisor/qemu/reap";
import { REAPER_KINDS, reapVm } from "../../src/hypervisor/reapers";
import { HYPERVISOR_KINDS } from "../../src/hypervisor/drivers";
import { cleanup } from "../../src/shim/delete";
import { SOCKET_DIR_LINK } from "../../src/shim/start-v2";
import type { ShimFlags } from "../../src/shim/flags";

const dirs: string[] = [];
const tmp = (): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-reap-"));
  dirs.push(d);
  return d;
};

const children: ChildProcess[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** A process to stand for an agent or QEMU, and its exit. */
function sleeper(): { child: ChildProcess; pid: number; startTime: string; exited: Promise<NodeJS.Signals | null> } {
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  children.push(child);
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_c, signal) => resolve(signal)));
  const startTime = processStartTime(child.pid!);
  if (!startTime) throw new Error("no start time for the sleeper");
  return { child, pid: child.pid!, startTime, exited };
}

const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;
const settle = () => new Promise((r) => setTimeout(r, 100));

/** A runner that runs nothing: it records each command and answers from `answer`. */
function recording(answer: (cmd: string, args: string[]) => string = () => ""): { calls: string[][]; warns: string[]; cx: ReapContext } {
  const calls: string[][] = [];
  const warns: string[] = [];
  const run: CommandRunner = (cmd, args) => {
    calls.push([cmd, ...args]);
    return answer(cmd, args);
  };
  return { calls, warns, cx: { run, warn: (m) => warns.push(m) } };
}

function failure(stderr: string): Error {
  return Object.assign(new Error(`Command failed`), { stderr: Buffer.from(stderr + "\n") });
}

const hostRecord = (o: Partial<VmRecord>): VmRecord => ({ kind: "none", pid: 0, startTime: "", agentUrl: "hvsock:///x/agent.sock:1024", ...o });
const qemuRecord = (o: Partial<VmRecord>): VmRecord => ({ kind: "qemu", pid: 0, startTime: "", agentUrl: "unix:///x/agent.sock", ...o });

describe("the host agent's reaper", () => {
  // Whatever cgroups it would remove are under a parent no test host has.
  const isolate = () => vi.stubEnv("SHIMLAB_CGROUP_PARENT", `shimlab-reap-test-${process.pid}`);

  it("kills the recorded agent and force-deletes every container runc lists in the record's root, warning of one that would not go", async () => {
    isolate();
    const agent = sleeper();
    const runcRoot = path.join(tmp(), "runc");
    fs.mkdirSync(path.join(runcRoot, "c1"), { recursive: true });
    const { calls, warns, cx } = recording((_cmd, args) => {
      if (args.includes("list")) return "c1\nc2\n";
      if (args.includes("c2")) throw failure("container c2: device or resource busy");
      return "";
    });
    reapHostAgent(hostRecord({ pid: agent.pid, startTime: agent.startTime, runcRoot }), { sandboxId: "sb" }, cx);
    expect(calls).toEqual([
      ["runc", "--root", runcRoot, "list", "-q"],
      ["runc", "--root", runcRoot, "delete", "--force", "c1"],
      ["runc", "--root", runcRoot, "delete", "--force", "c2"],
    ]);
    expect(warns).toEqual(["runc delete --force c2: container c2: device or resource busy"]);
    expect(await agent.exited).toBe("SIGKILL");
  });

  it("leaves a recycled pid alone: the process there now started at another time", async () => {
    isolate();
    const other = sleeper();
    const { calls, cx } = recording();
    reapHostAgent(hostRecord({ pid: other.pid, startTime: String(Number(other.startTime) - 1) }), { sandboxId: "sb" }, cx);
    await settle();
    expect(alive(other.child)).toBe(true);
    expect(calls).toEqual([]);
  });

  it("for one container of a pod deletes that container only, and the agent lives on", async () => {
    isolate();
    const agent = sleeper();
    const runcRoot = path.join(tmp(), "runc");
    fs.mkdirSync(path.join(runcRoot, "c1"), { recursive: true });
    const { calls, cx } = recording();
    reapHostAgent(hostRecord({ pid: agent.pid, startTime: agent.startTime, runcRoot }), { sandboxId: "sb", containerId: "c1" }, cx);
    expect(calls).toEqual([["runc", "--root", runcRoot, "delete", "--force", "c1"]]);
    await settle();
    expect(alive(agent.child)).toBe(true);
  });

  it("runs nothing for an empty runc root (an agent that cleaned up)", () => {
    isolate();
    const runcRoot = path.join(tmp(), "runc");
    fs.mkdirSync(runcRoot);
    const { calls, cx } = recording();
    reapHostAgent(hostRecord({ runcRoot }), { sandboxId: "sb" }, cx);
    expect(calls).toEqual([]);
  });
});

describe("the QEMU driver's reaper", () => {
  const nics = [
    { hostIf: "eth0", tap: "tap0_kata" },
    { hostIf: "eth1", tap: "tap1_kata" },
  ];

  it("kills QEMU, then removes the taps, the veths' mirrors and the loopback redirect inside the recorded namespace", async () => {
    const qemu = sleeper();
    const netns = path.join(tmp(), "netns");
    fs.writeFileSync(netns, "");
    const { calls, warns, cx } = recording();
    reapQemu(qemuRecord({ pid: qemu.pid, startTime: qemu.startTime, netns, nics, loopback: { netns, port: 40123, comment: "shimlab portfwd sb" } }), { sandboxId: "sb" }, cx);
    const ns = ["nsenter", `--net=${netns}`, "--"];
    expect(calls).toEqual([
      [...ns, "ip", "link", "del", "tap0_kata"],
      [...ns, "tc", "qdisc", "del", "dev", "eth0", "ingress"],
      [...ns, "ip", "link", "del", "tap1_kata"],
      [...ns, "tc", "qdisc", "del", "dev", "eth1", "ingress"],
      [...ns, ..."iptables -w -t nat -D OUTPUT -o lo -p tcp -d 127.0.0.0/8 -m tcp ! --dport 40123 -m comment --comment".split(" "), "shimlab portfwd sb", ..."-j REDIRECT --to-ports 40123".split(" ")],
    ]);
    expect(warns).toEqual([]);
    expect(await qemu.exited).toBe("SIGKILL");
  });

  it("warns of a tap that would not go and goes on; a redirect already gone is no warning", () => {
    const netns = path.join(tmp(), "netns");
    fs.writeFileSync(netns, "");
    const { calls, warns, cx } = recording((_cmd, args) => {
      if (args.includes("tap0_kata")) throw failure("Cannot find device \"tap0_kata\"");
      if (args.includes("iptables")) throw failure("iptables: Bad rule (does a matching rule exist in that chain?).");
      return "";
    });
    reapQemu(qemuRecord({ netns, nics, loopback: { netns, port: 40123, comment: "shimlab portfwd sb" } }), { sandboxId: "sb" }, cx);
    expect(calls).toHaveLength(5);
    expect(warns).toEqual([`ip link del tap0_kata in ${netns}: Cannot find device "tap0_kata"`]);
  });

  it("warns when the redirect's removal fails for another reason", () => {
    const netns = path.join(tmp(), "netns");
    fs.writeFileSync(netns, "");
    const { warns, cx } = recording(() => {
      throw failure("iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)");
    });
    reapQemu(qemuRecord({ loopback: { netns, port: 40123, comment: "shimlab portfwd sb" } }), { sandboxId: "sb" }, cx);
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatch(/^iptables -w -t nat -D OUTPUT .* in .*netns: .*Permission denied/);
  });

  it("runs nothing once the namespace is gone, nor for one container of a pod (it lived in the guest)", async () => {
    const gone = recording();
    reapQemu(qemuRecord({ netns: "/nonexistent/netns", nics, loopback: { netns: "/nonexistent/netns", port: 1, comment: "c" } }), { sandboxId: "sb" }, gone.cx);
    expect(gone.calls).toEqual([]);

    const qemu = sleeper();
    const netns = path.join(tmp(), "netns");
    fs.writeFileSync(netns, "");
    const one = recording();
    reapQemu(qemuRecord({ pid: qemu.pid, startTime: qemu.startTime, netns, nics }), { sandboxId: "sb", containerId: "c1" }, one.cx);
    expect(one.calls).toEqual([]);
    await settle();
    expect(alive(qemu.child)).toBe(true);
  });
});

describe("the reaper registry", () => {
  it("has a reaper for every driver a configuration can name", () => {
    expect([...REAPER_KINDS].sort()).toEqual([...HYPERVISOR_KINDS].sort());
    expect(HYPERVISOR_KINDS).toContain("none");
  });

  it("finds each record's reaper by its kind", async () => {
    const netns = path.join(tmp(), "netns");
    fs.writeFileSync(netns, "");
    const q = recording();
    expect(await reapVm(qemuRecord({ netns, nics: [{ hostIf: "eth0", tap: "tap0_kata" }] }), { sandboxId: "sb" }, q.cx.warn, q.cx.run)).toBe(true);
    expect(q.calls[0]).toEqual(["nsenter", `--net=${netns}`, "--", "ip", "link", "del", "tap0_kata"]);

    vi.stubEnv("SHIMLAB_CGROUP_PARENT", `shimlab-reap-test-${process.pid}`);
    const runcRoot = path.join(tmp(), "runc");
    fs.mkdirSync(path.join(runcRoot, "c1"), { recursive: true });
    const h = recording();
    expect(await reapVm(hostRecord({ runcRoot }), { sandboxId: "sb" }, h.cx.warn, h.cx.run)).toBe(true);
    expect(h.calls[0]).toEqual(["runc", "--root", runcRoot, "list", "-q"]);
    expect(q.warns.concat(h.warns)).toEqual([]);
  });

  it("answers a kind it has no driver for with a clear warning, and touches nothing", async () => {
    const proc = sleeper();
    const netns = path.join(tmp(), "netns");
    fs.writeFileSync(netns, "");
    const { calls, warns, cx } = recording();
    const rec = { ...qemuRecord({ pid: proc.pid, startTime: proc.startTime, netns, nics: [{ hostIf: "eth0", tap: "tap0_kata" }] }), kind: "firecracker" } as unknown as VmRecord;
    expect(await reapVm(rec, { sandboxId: "sb" }, cx.warn, cx.run)).toBe(false);
    expect(warns).toEqual([`VM record of hypervisor kind "firecracker": this shimlab reaps "none" and "qemu" only; nothing reaped, the record is kept`]);
    expect(calls).toEqual([]);
    await settle();
    expect(alive(proc.child)).toBe(true);
  });

  it("keeps a record its reaper could not make sense of", async () => {
    const netns = path.join(tmp(), "netns");
    fs.writeFileSync(netns, "");
    const { warns, cx } = recording();
    const rec = qemuRecord({ netns, nics: "eth0" as unknown as VmRecord["nics"] });
    expect(await reapVm(rec, { sandboxId: "sb" }, cx.warn, cx.run)).toBe(false);
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatch(/^reaping the qemu VM \(pid 0\) failed, the record is kept: /);
  });
});

describe("delete after a dead shim", () => {
  /** A sandbox's run dir with vm.json, and the flags `delete` gets for it; no shim listens. */
  function deadShim(rec: unknown): { flags: ShimFlags; runDir: string } {
    const d = tmp();
    vi.stubEnv("SHIMLAB_RUN_DIR", path.join(d, "run"));
    vi.stubEnv("SHIMLAB_CGROUP_PARENT", `shimlab-reap-test-${process.pid}`);
    const bundle = path.join(d, "bundle");
    fs.mkdirSync(bundle);
    fs.mkdirSync(path.join(d, "s"));
    fs.symlinkSync(path.join(d, "s"), path.join(bundle, SOCKET_DIR_LINK));
    const runDir = path.join(d, "run", "ns", "sb1");
    fs.mkdirSync(runDir, { recursive: true });
    fs.writeFileSync(path.join(runDir, "vm.json"), JSON.stringify(rec));
    const flags = { namespace: "ns", id: "sb1", address: "/run/containerd/containerd.sock", bundle } as ShimFlags;
    return { flags, runDir };
  }

  it("reaps a host agent's record through its driver and removes the run dir", async () => {
    const agent = sleeper();
    const { flags, runDir } = deadShim(hostRecord({ pid: agent.pid, startTime: agent.startTime }));
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await cleanup(flags)).toBe(agent.pid);
    expect(await agent.exited).toBe("SIGKILL");
    expect(fs.existsSync(runDir)).toBe(false);
    expect(stderr).not.toHaveBeenCalled();
  });

  it("keeps the run dir, record and all, when no driver here knows the record's kind", async () => {
    const proc = sleeper();
    const { flags, runDir } = deadShim({ ...hostRecord({ pid: proc.pid, startTime: proc.startTime }), kind: "firecracker" });
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    await cleanup(flags);
    expect(fs.existsSync(path.join(runDir, "vm.json"))).toBe(true);
    expect(String(stderr.mock.calls[0]?.[0])).toMatch(/hypervisor kind "firecracker".*the record is kept/);
    await settle();
    expect(alive(proc.child)).toBe(true);
  });
});
