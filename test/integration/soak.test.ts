// Soak: container lifecycles in a loop through one pod's shim on the tests'
// own containerd; the file descriptors and memory of the pod shim, its agent
// and containerd must stay flat (containerd's TestShimDoesNotLeakPipes, at length).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import { Containerd } from "../../src/harness/containerd";
import { SHIM_DAEMON_SCRIPT, descendants, listProcesses, shimlabProcesses } from "../../src/harness/leaks";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { ARTIFACTS, busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";
import { forceRemove } from "../helpers/ctr";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const LIFECYCLES = Number(process.env.SHIMLAB_SOAK_LIFECYCLES ?? 500);
const WARMUP = Math.min(50, Math.floor(LIFECYCLES / 5));

interface Sample {
  at: number;
  fds: Record<string, number>;
  rssKb: Record<string, number>;
}

/** Live heap bytes (objects, not code) of each process: SIGUSR2 makes Node GC and write a snapshot; its nodes' self sizes add up. */
async function liveHeaps(dir: string, pids: Record<string, number>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [k, pid] of Object.entries(pids)) {
    const before = new Set(fs.readdirSync(dir));
    process.kill(pid, "SIGUSR2");
    let file: string | undefined;
    for (let i = 0; i < 300 && !file; i++) {
      await new Promise((r) => setTimeout(r, 100));
      file = fs.readdirSync(dir).find((f) => !before.has(f) && f.includes(`.${pid}.`) && f.endsWith(".heapsnapshot"));
    }
    if (!file) throw new Error(`no heap snapshot from ${k} (pid ${pid})`);
    // Written in one go but not atomically: wait until it parses.
    let snap: any;
    for (let i = 0; i < 100 && !snap; i++) {
      try {
        snap = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const fields: string[] = snap.snapshot.meta.node_fields;
    const types: string[] = snap.snapshot.meta.node_types[0];
    const size = fields.indexOf("self_size");
    const type = fields.indexOf("type");
    let total = 0;
    for (let i = 0; i < snap.nodes.length; i += fields.length) {
      // Compiled code (and the weak lists tracking it) grows as V8 tiers functions up: not a leak.
      const t = types[snap.nodes[i + type]];
      if (t !== "code" && t !== "hidden") total += snap.nodes[i + size];
    }
    out[k] = total;
    fs.rmSync(path.join(dir, file));
  }
  return out;
}

const fdCount = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;
const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]);

describe.skipIf(skip)("soak: lifecycles through one pod's shim", () => {
  let ctd: Containerd;
  let rootfs: string;
  let heapDir: string;

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    heapDir = fs.mkdtempSync(path.join(os.tmpdir(), "soak-heap-"));
    // Node processes write a heap snapshot (after a full GC) on SIGUSR2: the live JS heap, free of GC timing.
    ctd = new Containerd({ env: { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${heapDir}` } });
    await ctd.start();
  });

  afterAll(async () => {
    fs.rmSync(heapDir, { recursive: true, force: true });
    await ctd?.destroy();
    removeCgroupDirs(ctd.cgroupParent);
  });

  afterEach(async () => {
    await expectNoLeaks([ctd.address], [ctd.dir], ctd.cgroupParent);
  });

  it(`keeps fds and memory flat over ${LIFECYCLES} container lifecycles`, async () => {
    const pod = "soak-pod";
    const rt = "io.containerd.shimlab.v2";
    try {
      await ctd.ctr(
        ["run", "-d", "--runtime", rt, "--annotation", "io.kubernetes.cri.container-type=sandbox", "--annotation", `io.kubernetes.cri.sandbox-id=${pod}`, "--rootfs", rootfs, pod, "/bin/sleep", "3000"],
        { check: true },
      );
      const shim = shimlabProcesses([ctd.address]).find((p) => SHIM_DAEMON_SCRIPT.test(p.cmdline) && p.cmdline.includes(`-id ${pod}`))!;
      expect(shim, "the pod's shim").toBeDefined();
      const agent = descendants(shim.pid).find((p) => p.cmdline.includes("mock-agent"))!;
      expect(agent, "the pod's agent").toBeDefined();
      const pids = { shim: shim.pid, agent: agent.pid, containerd: ctd.pid! };
      const sample = (at: number): Sample => ({
        at,
        fds: Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, fdCount(p)])),
        rssKb: Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, rssKb(p)])),
      });
      const samples: Sample[] = [sample(0)];
      let heapAtWarmup: Record<string, number> = {};
      const started = Date.now();
      for (let i = 1; i <= LIFECYCLES; i++) {
        const id = `c${i}`;
        const r = await ctd.ctr([
          "run", "--rm", "--runtime", rt,
          "--annotation", "io.kubernetes.cri.container-type=container", "--annotation", `io.kubernetes.cri.sandbox-id=${pod}`,
          "--rootfs", rootfs, id, "/bin/sh", "-c", `exit ${i % 7}`,
        ]);
        expect(r.code, `lifecycle ${i}: ${r.err}`).toBe(i % 7);
        // The warm-up heap snapshot first: writing one costs each process tens of MB of RSS it keeps
        // (malloc does not give it back), so the RSS base must include it as the end does.
        if (i === WARMUP) heapAtWarmup = await liveHeaps(heapDir, { shim: shim.pid, agent: agent.pid });
        if (i % 50 === 0 || i === WARMUP || i === LIFECYCLES) samples.push(sample(i));
      }
      const ms = Date.now() - started;
      // The pod shim served every lifecycle: it is the same process, and still alive.
      expect(listProcesses().some((p) => p.pid === shim.pid)).toBe(true);

      const heapAtEnd = await liveHeaps(heapDir, { shim: shim.pid, agent: agent.pid });
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      fs.writeFileSync(
        `${ARTIFACTS}/soak.json`,
        JSON.stringify({ lifecycles: LIFECYCLES, ms, perLifecycleMs: ms / LIFECYCLES, liveHeapBytes: { atWarmup: heapAtWarmup, atEnd: heapAtEnd }, samples }, null, 2),
      );
      const base = samples.find((x) => x.at === WARMUP)!;
      const last = samples[samples.length - 1];
      for (const k of Object.keys(pids)) {
        // fds: exactly flat once warm (a leak of one per lifecycle would show hundreds).
        expect(last.fds[k] - base.fds[k], `${k} fds ${base.fds[k]} → ${last.fds[k]}`).toBeLessThanOrEqual(4);
        // RSS follows V8's heap sizing and malloc more than live objects: only a gross leak shows here.
        expect(last.rssKb[k] - base.rssKb[k], `${k} RSS ${base.rssKb[k]} → ${last.rssKb[k]} kB`).toBeLessThan(64 * 1024);
      }
      // Live JS objects after a full GC: a leak of 1 KB per lifecycle over 450 would pass 256 KB.
      for (const k of ["shim", "agent"]) {
        const grew = heapAtEnd[k] - heapAtWarmup[k];
        expect(grew, `${k} live heap ${heapAtWarmup[k]} → ${heapAtEnd[k]} bytes`).toBeLessThan(Math.max(256 * 1024, (LIFECYCLES - WARMUP) * 512));
      }
    } finally {
      await forceRemove(ctd, pod);
    }
  }, 1_800_000);
});
