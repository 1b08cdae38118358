// The harness's containerd stand-in checked against the real containerd it
// plays (the one SHIMLAB_CONTAINERD picks: 1.6, 1.7 or 2.1). The same
// `ctr run --rm` goes through both, with a recording shim in front of
// shimlab's (what `start` and `delete` are handed: argv, environment, cwd,
// stdin) and shimlab's own trace (which Task calls arrive, in what order, and
// which events leave). Where the two differ, the emulator is wrong.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Containerd, REPO_ROOT, SHIM_BINARY } from "../../src/harness/containerd";
import { ContainerdEmulator } from "../../src/harness/emulator";
import { writeRecordingShim, type ShimInvocation } from "../../src/harness/recording-shim";
import { currentContainerd, type ContainerdPeer } from "../../src/harness/peers/containerd";
import type { Containerd2Options } from "../../src/harness/shim-runner";
import { readTrace } from "../../src/trace/model";
import { socketAddress, socketPath } from "../../src/shim/address";
import { removeCgroupDirs } from "../../src/util/cgroup";
import { busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";
import { waitUntil } from "../helpers/cri";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const ID = "fidelity";
const ARGS = ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"];

/** The emulator's mode for a real containerd series (SHIMLAB_EMULATE's values). */
function emulationOf(peer: ContainerdPeer, protocol?: "ttrpc"): Containerd2Options | undefined {
  if (peer.series === "1.6") return undefined;
  if (peer.series === "1.7" || peer.series === "2.1") return { series: peer.series, protocol };
  throw new Error(`no emulation of containerd ${peer.series}`);
}

interface Observed {
  start: string;
  delete: string;
  calls: string[];
  create: Record<string, unknown>;
  events: string[];
  bundleFiles: string[];
  exitStatus: number;
  stdout: string;
  /** The shim's socket, which must not outlive the run. */
  socket: string;
}

/** One invocation with this run's paths replaced by names, and only the environment containerd adds. */
function normaliseInvocation(inv: ShimInvocation, base: NodeJS.ProcessEnv, paths: Record<string, string>): string {
  const sub = (s: string) => Object.entries(paths).reduce((x, [p, name]) => x.split(p).join(name), s);
  const added = Object.keys(inv.env)
    .filter((k) => base[k] !== inv.env[k] && k !== "PWD" && k !== "OLDPWD" && k !== "SHLVL" && k !== "_")
    .sort()
    .map((k) => {
      // A search path containerd extended: what it put in front of the one it was given.
      const given = base[k] ?? "";
      const v = /PATH$/.test(k) && inv.env[k].endsWith(given) ? `${inv.env[k].slice(0, inv.env[k].length - given.length)}$${k}` : inv.env[k];
      return `${k}=${sub(v)}`;
    });
  return [`argv ${sub(inv.argv.join(" "))}`, `cwd ${sub(inv.cwd)}`, `stdin ${inv.stdin.toString("hex") || "(empty)"}`, ...added].join("\n");
}

function invocation(all: ShimInvocation[], action: "start" | "delete", base: NodeJS.ProcessEnv, paths: Record<string, string>): string {
  const inv = all.find((i) => i.action === action);
  return inv ? normaliseInvocation(inv, base, paths) : `(no ${action})`;
}

/** containerd→shim calls in order; ctr's Start and its Wait go out side by side, so their window is sorted. */
function canonicalCalls(calls: string[]): string[] {
  const from = calls.indexOf("Create") + 1;
  const to = calls.indexOf("State", from);
  if (from <= 0 || to < 0) return calls;
  return [...calls.slice(0, from), ...calls.slice(from, to).sort(), ...calls.slice(to)];
}

function fromTrace(traceDir: string, paths: Record<string, string>) {
  const recs = readTrace(traceDir);
  const sub = (v: unknown) => (typeof v === "string" ? Object.entries(paths).reduce((x, [p, name]) => x.split(p).join(name), v) : v);
  const calls = recs.filter((r) => r.kind === "rpc.call" && r.from === "containerd").map((r) => String(r.method));
  const createReq = (recs.find((r) => r.kind === "rpc.call" && r.from === "containerd" && r.method === "Create")?.req ?? {}) as Record<string, unknown>;
  // Which fields containerd fills, and with what kind of value: fifo names, not their random directories.
  const create = Object.fromEntries(Object.entries(createReq).map(([k, v]) => [k, typeof v === "string" && /-(stdin|stdout|stderr)$/.test(v) ? `<fifo>/${path.basename(v)}` : sub(v)]));
  const events = recs.filter((r) => r.kind === "event").map((r) => String(r.topic));
  return { calls: canonicalCalls(calls), create, events };
}

/** Every name the bundle held during the run (write-then-rename scratch files aside: Go's are all digits). */
function watchBundle(bundle: string): { stop(): string[] } {
  const seen = new Set<string>();
  const poll = () => {
    try {
      for (const f of fs.readdirSync(bundle)) if (!f.startsWith(".") && !/\.tmp/.test(f) && !/^\d+$/.test(f)) seen.add(f);
    } catch {
      /* not there yet, or gone */
    }
  };
  const timer = setInterval(poll, 2);
  return {
    stop: () => {
      clearInterval(timer);
      return [...seen].sort();
    },
  };
}

describe.skipIf(skip)("the emulator plays the real containerd", () => {
  let peer: ContainerdPeer;
  let work: string;
  let rootfs: string;
  const cgroups: string[] = [];

  beforeAll(async () => {
    peer = await currentContainerd();
    rootfs = busyboxRootfs();
    work = fs.mkdtempSync(path.join(os.tmpdir(), "fidelity-"));
  });

  afterAll(() => {
    for (const c of cgroups) removeCgroupDirs(c);
    fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(async () => {
    await expectNoLeaks([work], [work]);
  });

  async function real(dir: string, env: NodeJS.ProcessEnv): Promise<Observed> {
    const rec = writeRecordingShim(path.join(dir, "rec"), SHIM_BINARY);
    const trace = path.join(dir, "trace");
    fs.mkdirSync(trace);
    const ctd = new Containerd({ dir: path.join(dir, "ctd"), peer, shimBinDir: `${rec.binDir}:${path.join(REPO_ROOT, "bin")}`, env: { ...env, SHIMLAB_TRACE: trace + "/" } });
    cgroups.push(ctd.cgroupParent);
    try {
      await ctd.start();
      const bundle = path.join(ctd.state, "io.containerd.runtime.v2.task", "default", ID);
      const files = watchBundle(bundle);
      const r = await ctd.ctr(["run", "--rm", "--runtime", rec.runtimeType, "--rootfs", rootfs, ID, ...ARGS]);
      const bundleFiles = files.stop();
      const paths = { [bundle]: "<bundle>", [ctd.ttrpcAddress]: "<ttrpc>", [ctd.address]: "<address>", [fs.realpathSync(peer.containerd)]: "<containerd>", [peer.containerd]: "<containerd>" };
      const base = ctd.env();
      const inv = rec.read();
      const t = fromTrace(trace, paths);
      return {
        start: invocation(inv, "start", base, paths),
        delete: invocation(inv, "delete", base, paths),
        ...t,
        bundleFiles,
        exitStatus: r.code ?? -1,
        stdout: r.out,
        socket: socketPath(socketAddress(ctd.address, "default", ID)),
      };
    } finally {
      await ctd.destroy();
    }
  }

  async function emulated(dir: string, env: NodeJS.ProcessEnv, c2: Containerd2Options | undefined): Promise<Observed> {
    const rec = writeRecordingShim(path.join(dir, "rec"), SHIM_BINARY);
    const trace = path.join(dir, "trace");
    fs.mkdirSync(trace);
    const base = { ...process.env, PATH: `${rec.binDir}:${process.env.PATH}`, ...env };
    const emu = new ContainerdEmulator({ binary: rec.binary, namespace: "default", dir: path.join(dir, "emu"), env: { ...base, SHIMLAB_TRACE: trace + "/" }, containerd2: c2 });
    emu.runner.o.publishBinary = fs.realpathSync(peer.containerd);
    cgroups.push(emu.cgroupParent);
    await emu.start();
    try {
      const bundle = path.join(emu.bundlesDir(), ID);
      const files = watchBundle(bundle);
      const r = await emu.ctrRun(ID, rootfs, ARGS);
      const bundleFiles = files.stop();
      const paths = { [bundle]: "<bundle>", [emu.events.socketPath]: "<ttrpc>", [emu.address]: "<address>", [fs.realpathSync(peer.containerd)]: "<containerd>", [peer.containerd]: "<containerd>" };
      const inv = rec.read();
      const envBase = { ...base, SHIMLAB_TRACE: trace + "/", SHIMLAB_CGROUP_PARENT: emu.cgroupParent, SHIMLAB_RUN_DIR: path.join(emu.dir, "run") };
      return {
        start: invocation(inv, "start", envBase, paths),
        delete: invocation(inv, "delete", envBase, paths),
        ...fromTrace(trace, paths),
        bundleFiles,
        exitStatus: r.exitStatus,
        stdout: r.stdout,
        socket: socketPath(socketAddress(emu.address, "default", ID)),
      };
    } finally {
      await emu.close();
    }
  }

  it("ctr run --rm: start and delete get the same input, the shim the same calls in the same order, and the same events leave", async () => {
    const r = await real(path.join(work, "real"), {});
    const e = await emulated(path.join(work, "emu"), {}, emulationOf(peer));
    // The run itself: ctr's output and exit status.
    expect(r.exitStatus).toBe(3);
    expect(r.stdout).toBe("out\n");
    expect(e.exitStatus).toBe(3);
    expect(e.stdout).toBe("out\n");
    expect(e.start).toBe(r.start);
    expect(e.delete).toBe(r.delete);
    expect(e.calls).toEqual(r.calls);
    expect(e.calls).toEqual(["Create", "Connect", "Connect", "Start", "Wait", "State", "State", "Delete", "Shutdown"]);
    expect(e.create).toEqual(r.create);
    expect(e.events).toEqual(r.events);
    expect(e.events).toEqual(["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
    // What the bundle holds during the run (1.7+: shim-binary-path; 2.x: bootstrap.json).
    expect(e.bundleFiles).toEqual(r.bundleFiles);
  }, 120_000);

  it("a version 3 bootstrap result (SHIMLAB_SHIM_PROTOCOL=ttrpc): served as task v3 by 2.x, refused by 1.7, never asked by 1.6", async () => {
    const env = { SHIMLAB_SHIM_PROTOCOL: "ttrpc" };
    const r = await real(path.join(work, "real-v3"), env).catch((err: Error) => err);
    if (peer.series === "1.6") {
      // 1.6 sets no MAX_SHIM_VERSION: shimlab answers the plain address it reads.
      expect(r).not.toBeInstanceOf(Error);
      return;
    }
    const e = await emulated(path.join(work, "emu-v3"), env, emulationOf(peer, "ttrpc")).catch((err: Error) => err);
    if (peer.series === "1.7") {
      // difference v3-result-refused: ctr fails; the emulator refuses with the same words.
      expect(r).not.toBeInstanceOf(Error);
      expect((r as Observed).exitStatus).not.toBe(0);
      // containerd removed the bundle and never connects: the daemon `start` launched goes, and its socket with it
      await waitUntil("the refused shim's socket to go", () => !fs.existsSync((r as Observed).socket), 5_000);
      expect(e).toBeInstanceOf(Error);
      expect((e as Error).message).toContain("unsupported shim version (3): not implemented");
      return;
    }
    expect(r).not.toBeInstanceOf(Error);
    expect(e).not.toBeInstanceOf(Error);
    const [ro, eo] = [r as Observed, e as Observed];
    expect(ro.exitStatus).toBe(3);
    expect(eo.start).toBe(ro.start);
    expect(eo.calls).toEqual(ro.calls);
    expect(eo.events).toEqual(ro.events);
    expect(eo.bundleFiles).toEqual(ro.bundleFiles);
  }, 120_000);
});
