// Soak: container lifecycles in a loop through one pod's shim on the tests'
// own containerd; the file descriptors and memory of the pod shim, its agent
// and containerd must stay flat (containerd's TestShimDoesNotLeakPipes, at length).
import fs from "node:fs";
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import { Containerd } from "../../src/harness/containerd";
import { descendants, listProcesses } from "../../src/harness/leaks";
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

const fdCount = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;
const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]);

describe.skipIf(skip)("soak: lifecycles through one pod's shim", () => {
  let ctd: Containerd;
  let rootfs: string;

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    ctd = new Containerd();
    await ctd.start();
  });

  afterAll(async () => {
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
      const shim = listProcesses().find((p) => p.cmdline.includes("dist/shim/main.js") && p.cmdline.includes(`-id ${pod}`))!;
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
      const started = Date.now();
      for (let i = 1; i <= LIFECYCLES; i++) {
        const id = `c${i}`;
        const r = await ctd.ctr([
          "run", "--rm", "--runtime", rt,
          "--annotation", "io.kubernetes.cri.container-type=container", "--annotation", `io.kubernetes.cri.sandbox-id=${pod}`,
          "--rootfs", rootfs, id, "/bin/sh", "-c", `exit ${i % 7}`,
        ]);
        expect(r.code, `lifecycle ${i}: ${r.err}`).toBe(i % 7);
        if (i % 50 === 0 || i === WARMUP || i === LIFECYCLES) samples.push(sample(i));
      }
      const ms = Date.now() - started;
      // The pod shim served every lifecycle: it is the same process, and still alive.
      expect(listProcesses().some((p) => p.pid === shim.pid)).toBe(true);

      fs.mkdirSync(ARTIFACTS, { recursive: true });
      fs.writeFileSync(`${ARTIFACTS}/soak.json`, JSON.stringify({ lifecycles: LIFECYCLES, ms, perLifecycleMs: ms / LIFECYCLES, samples }, null, 2));
      const warm = samples.filter((x) => x.at >= WARMUP);
      const half = Math.floor(warm.length / 2);
      const base = warm[0];
      const last = warm[warm.length - 1];
      // RSS floors (the lowest sample of each half) track the heap after collection, not GC timing.
      const floor = (xs: Sample[], k: string) => Math.min(...xs.map((x) => x.rssKb[k]));
      for (const k of Object.keys(pids)) {
        // fds: exactly flat once warm (a leak of one per lifecycle would show hundreds).
        expect(last.fds[k] - base.fds[k], `${k} fds ${base.fds[k]} → ${last.fds[k]}`).toBeLessThanOrEqual(4);
        // memory: a leak of 30 KB per lifecycle over 450 would raise the floor by 13 MB.
        const early = floor(warm.slice(0, half), k);
        const late = floor(warm.slice(half), k);
        expect(late - early, `${k} RSS floor ${early} → ${late} kB`).toBeLessThan(12 * 1024);
      }
    } finally {
      await forceRemove(ctd, pod);
    }
  }, 1_800_000);
});
