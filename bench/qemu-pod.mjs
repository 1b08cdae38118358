// A QEMU pod through containerd's CRI (TCG here), on a CNI network of its own
// (bridge + host-local), from RunPodSandbox to its first container running:
// cold (the shim boots its VM) and warm (the shim takes a booted VM from
// `shimlab factory`, whose pool is full when each pod starts, as on a node
// between pods, and plugs the pod's NIC into it), beside runc's on the same
// network for the ratio. Same calls and timing as bench/cri.mjs; fewer runs,
// each cold VM boot taking seconds.
//
//   node bench/qemu-pod.mjs [--runs N]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { dist } from "./lib/env.mjs";
import { summary } from "./lib/stats.mjs";
import { warmFactory } from "./lib/factory.mjs";
import { onePod } from "./cri.mjs";

const { startCriContainerd } = dist("harness/cri/containerd.js");
const { removeCgroupDirs } = dist("mock-agent/runtime/runc.js");
const { qemuHarnessConfig } = dist("harness/qemu-config.js");
const { untilFactoryReady } = dist("hypervisor/factory/client.js");
const { cniMissing, cniNetworkFor } = dist("harness/cri/cni.js");

const IDLE_MS = 5000;

/** [pid, ppid, CPU ms (user + system)] of every process now. */
function processes() {
  const tick = 1000 / 100; // USER_HZ
  const out = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
      out.push([Number(d), Number(f[1]), (Number(f[11]) + Number(f[12])) * tick, st.slice(st.indexOf("(") + 1, st.lastIndexOf(")"))]);
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * What a full pool costs the node while nothing asks for it: the CPU of the factory and everything
 * under it (its VM keeper and QEMU, its parked shim daemon), as % of one CPU over IDLE_MS, from 3 s
 * after the pool is full. A guest that polls while idle shows here (the agent's port and reaper
 * polls were 13.5 % of a CPU, bench/CHANGELOG.md).
 */
async function idlePool(factory) {
  if (!(await untilFactoryReady(factory.socket, { timeoutMs: 180_000, gone: () => false }))) throw new Error("the QEMU factory did not fill its pool");
  const root = (await factory.statusNow()).pid;
  await new Promise((r) => setTimeout(r, 3000));
  const tree = (ps) => {
    const kids = new Map();
    for (const [pid, ppid] of ps) kids.set(ppid, [...(kids.get(ppid) ?? []), pid]);
    const all = new Set([root]);
    for (const p of all) for (const k of kids.get(p) ?? []) all.add(k);
    return new Map(ps.filter(([pid]) => all.has(pid)).map(([pid, , ms, comm]) => [pid, { ms, comm }]));
  };
  const a = tree(processes());
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const b = tree(processes());
  let treeMs = 0;
  let qemuMs = 0;
  for (const [pid, x] of b) {
    const d = x.ms - (a.get(pid)?.ms ?? x.ms);
    treeMs += d;
    if (x.comm.startsWith("qemu-system")) qemuMs += d;
  }
  return { treePct: (100 * treeMs) / IDLE_MS, qemuPct: (100 * qemuMs) / IDLE_MS };
}

/** Pod-ready (RunPodSandbox + CreateContainer + StartContainer) per handler, in ms, and the pool's idle CPU; null when no guest image can be had. */
export async function qemuPodBench({ runs = 3, warmup = 1, log = () => {} } = {}) {
  const { ensureImage, findKernel } = dist("guest-image/index.js");
  if (!findKernel()) {
    log("qemu pod: skipped (no guest kernel: apt-get install linux-image-amd64)");
    return null;
  }
  if (cniMissing()) {
    log(`qemu pod: skipped (needs ${cniMissing()})`);
    return null;
  }
  await ensureImage({ runc: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-bench-qemu-"));
  const cold = path.join(dir, "qemu.toml");
  fs.writeFileSync(cold, qemuHarnessConfig());
  const factory = warmFactory("qemu", 1, qemuHarnessConfig());
  const handlers = ["shimlab-qemu", "shimlab-qemu-warm", "runc"];
  const env = await startCriContainerd({ cni: cniNetworkFor(process.pid + 11), shimlabHandlers: { "shimlab-qemu": cold, "shimlab-qemu-warm": factory.config } });
  try {
    log(factory.start({ SHIMLAB_CGROUP_PARENT: env.ctd.cgroupParent }));
    const poolIdle = await idlePool(factory);
    log(`QEMU pool idle: ${poolIdle.treePct.toFixed(2)} % of a CPU for the factory's tree (its warm VM's QEMU ${poolIdle.qemuPct.toFixed(2)} %), over ${IDLE_MS / 1000} s`);
    const samples = Object.fromEntries(handlers.map((h) => [h, []]));
    const pod = async (h) => {
      // a full pool when each warm pod starts (the last take's refill is a VM boot, seconds under TCG)
      if (h === "shimlab-qemu-warm" && !(await untilFactoryReady(factory.socket, { timeoutMs: 180_000, gone: () => false }))) throw new Error("the QEMU factory did not refill its pool");
      return onePod(env, h, { network: true });
    };
    for (let i = 0; i < warmup; i++) for (const h of handlers) await pod(h);
    for (let i = 0; i < runs; i++)
      for (const h of handlers.map((_, k) => handlers[(k + i) % handlers.length])) {
        const s = await pod(h);
        log(`  ${h}: RunPodSandbox ${s.runPod.toFixed(1)} ms, CreateContainer + StartContainer ${s.container.toFixed(1)} ms, ExecSync ${s.exec.toFixed(1)} ms`);
        samples[h].push(s);
      }
    const out = Object.fromEntries(handlers.map((h) => [h, summary(samples[h].map((s) => s.runPod + s.container))]));
    log(`QEMU pod ready (median of ${runs}): ${handlers.map((h) => `${h} ${out[h].median.toFixed(1)} ms`).join(", ")}`);
    log(factory.status());
    return { ...out, poolIdle };
  } finally {
    const cg = env.ctd.cgroupParent;
    await env.destroy();
    factory.stop();
    removeCgroupDirs(cg);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  delete process.env.NODE_EXTRA_CA_CERTS;
  const r = await qemuPodBench({ runs: Number(argv[argv.indexOf("--runs") + 1] || 3) || 3, log: (m) => console.error(m) });
  if (r) console.table(Object.fromEntries(Object.entries(r).filter(([h]) => h !== "poolIdle").map(([h, s]) => [h, { median: +s.median.toFixed(1), min: +s.min.toFixed(1), max: +s.max.toFixed(1) }])));
}
