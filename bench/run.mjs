#!/usr/bin/env node
// npm run bench: shimlab against runc's shim (containerd-shim-runc-v2), both
// driven by one private containerd in the same run. Prints a table and writes
// bench/results.json as [{name, unit, shimlab, runc, ratio}] (ratio =
// shimlab / runc). Pinned to CPU 0 by default (`--free` to let the scheduler
// place things): cross-CPU wake-ups roughly double small latencies on these
// VMs, so only figures taken in the same mode compare.
//
//   node bench/run.mjs [--free] [--only lifecycle,memory,state,gostate,cri,qemu,echo] [--runs N] [--out file]
//                      [--variants shimlab-tree,shimlab-nocache,shimlab-base,shimlab-node,shimlab-warm]   (lifecycle; shimlab-warm also cri; see lib/variants.mjs)
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { ROOT, dist, placement, loadavg } from "./lib/env.mjs";
import { round } from "./lib/stats.mjs";
import { variantBinDir, runtimeOf } from "./lib/variants.mjs";
import { lifecycleFactory } from "./lib/factory.mjs";
import { CpuAccount } from "./lib/cpuacct.mjs";

const argv = process.argv.slice(2);
const flag = (n) => argv.includes(n);
const opt = (n, d) => {
  const i = argv.indexOf(n);
  return i >= 0 ? argv[i + 1] : d;
};

if (!flag("--free") && !process.env.SHIMLAB_BENCH_PINNED) {
  // re-run ourselves on CPU 0: every process we start inherits the mask
  const r = spawnSync("taskset", ["-c", "0", process.execPath, ...process.execArgv, new URL(import.meta.url).pathname, ...argv], {
    stdio: "inherit",
    env: { ...process.env, SHIMLAB_BENCH_PINNED: "1" },
  });
  process.exit(r.status ?? 1);
}
delete process.env.NODE_EXTRA_CA_CERTS; // containerd (and so every shim) inherits our environment

const only = new Set((opt("--only", "lifecycle,memory,state,gostate,cri,qemu,echo")).split(","));
const runs = Number(opt("--runs", "20"));
const outFile = path.resolve(opt("--out", path.join(ROOT, "bench", "results.json")));
const log = (m) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

const { Containerd } = dist("harness/containerd.js");
const { buildBusyboxRootfs } = dist("harness/rootfs.js");
const { removeCgroupDirs } = dist("mock-agent/runtime/runc.js");

const rows = [];
const add = (name, unit, shimlab, runc, note) => rows.push({ name, unit, shimlab: round(shimlab), runc: round(runc), ratio: round(shimlab / runc, 3), ...(note ? { note } : {}) });
const where = placement();
log(`placement ${where.mode} (cpus ${where.cpus} of ${where.ncpu}), load ${loadavg().join(" ")}`);

const rootfs = buildBusyboxRootfs(path.join(fs.mkdtempSync("/tmp/shimlab-bench-rootfs-"), "rootfs"));
// the warm figures (lifecycle_*_warm) are part of every run; --variants "" leaves them out
const variants = opt("--variants", "shimlab-warm").split(",").filter(Boolean);
const variantDir = variants.length ? variantBinDir(variants) : null;
const ctd = new Containerd(variantDir ? { env: { PATH: `${variantDir}:${process.env.PATH}` } } : {});
const warm = variants.includes("shimlab-warm");
// the factory the warm lifecycles and the warm pods' memory take their agents from (cri has its own)
const factoryUp = warm && (only.has("lifecycle") || only.has("memory"));
if (factoryUp) log(lifecycleFactory.start({ SHIMLAB_CGROUP_PARENT: ctd.cgroupParent }));
const details = {};
let cpu = null;
try {
  await ctd.start();
  log(`containerd ${ctd.pid} at ${ctd.dir}`);
  try {
    cpu = new CpuAccount(`shimlab-bench-${process.pid}`);
    cpu.add(ctd.pid);
  } catch (e) {
    log(`no CPU accounting (${e.message})`);
    cpu = null;
  }
  if (only.has("lifecycle")) {
    const { lifecycleBench } = await import("./lifecycle.mjs");
    // After a warm lifecycle, its pools are full again before the next runs (of any runtime): each runs on a quiet host.
    let unfilled = 0;
    const after = async (rt) => {
      if (rt === "shimlab-warm" && factoryUp && !(await lifecycleFactory.refilled())) unfilled++;
    };
    const factoryPid = factoryUp && variants.includes("shimlab-warm") ? (await lifecycleFactory.statusNow()).pid : 0;
    const r = await lifecycleBench(ctd, rootfs, { runs, variants, cpu, after, factoryPid, log });
    if (unfilled) log(`the factory's pools were not full again 10 s after ${unfilled} warm lifecycles`);
    details.lifecycle = r;
    add("lifecycle_median_ms", "ms", r.wall.shimlab.median, r.wall.runc.median);
    add("lifecycle_min_ms", "ms", r.wall.shimlab.min, r.wall.runc.min);
    add("lifecycle_max_ms", "ms", r.wall.shimlab.max, r.wall.runc.max);
    if (r.cpu) {
      add("lifecycle_cpu_ms", "ms", r.cpu.shimlab.median, r.cpu.runc.median, "CPU time of containerd + shim + agent + runc per lifecycle (median)");
      for (const v of variants) add(`lifecycle_cpu_ms_${v.replace(/^shimlab-/, "")}`, "ms", r.cpu[v].median, r.cpu.runc.median, `variant ${v}`);
    }
    for (const v of variants) add(`lifecycle_median_ms_${v.replace(/^shimlab-/, "")}`, "ms", r.wall[v].median, r.wall.runc.median, `variant ${v}`);
    if (r.phases) {
      const s = r.phases.shimlab.median;
      const c = r.phases.runc.median;
      add("start_subcommand_ms", "ms", s.start, c.start, "traced: exec → exit of `<shim> start`");
      add("delete_subcommand_ms", "ms", s.delete_subcommand, c.delete_subcommand, "traced: exec → exit of `<shim> delete`");
      for (const k of ["ctr_to_start", "create", "start_task", "exit", "delete_task", "delete", "tail", "daemon_lifetime", "teardown"]) add(`phase_${k}_ms`, "ms", s[k], c[k]);
      const w = r.phases["shimlab-warm"]?.median;
      if (w) for (const k of ["start", "create", "exit", "teardown"]) add(`phase_${k}_ms_warm`, "ms", w[k], c[k], "traced, the daemon and the agent from the factory");
    }
  }
  if (only.has("memory")) {
    const { memoryBench } = await import("./memory.mjs");
    const r = await memoryBench(ctd, rootfs, { log });
    details.memory = r;
    for (const n of Object.keys(r.shimlab)) {
      add(`shim_uss_mb_${n}`, "MB", r.shimlab[n].shim.uss, r.runc[n].shim.uss);
      add(`shim_pss_mb_${n}`, "MB", r.shimlab[n].shim.pss, r.runc[n].shim.pss);
      add(`shim_rss_mb_${n}`, "MB", r.shimlab[n].shim.rss, r.runc[n].shim.rss);
      add(`pod_uss_mb_${n}`, "MB", r.shimlab[n].shim.uss + r.shimlab[n].agent.uss, r.runc[n].shim.uss, "shimlab: shim + mock agent; runc: shim");
      add(`pod_pss_mb_${n}`, "MB", r.shimlab[n].shim.pss + r.shimlab[n].agent.pss, r.runc[n].shim.pss, "shimlab: shim + mock agent; runc: shim");
      add(`agent_uss_mb_${n}`, "MB", r.shimlab[n].agent.uss, NaN, "shimlab's mock agent (runc's shim has none)");
      add(`shim_uss_mb_${n}_at_2s`, "MB", r.shimlab[n].early.shim.uss, r.runc[n].early.shim.uss, "2 s after the last start, before V8's memory reducer");
    }
    if (factoryUp) {
      // 10 pods taking their agents from the lifecycle's factory (pool of 2, refilled as they start)
      const w = await memoryBench(ctd, rootfs, { runtimes: { "shimlab-warm": runtimeOf("shimlab-warm") }, counts: [10], log });
      details.memory.warm = w;
      const x = w["shimlab-warm"][10];
      add("pod_uss_mb_10_warm", "MB", x.shim.uss + x.agent.uss, r.runc[10].shim.uss, "shim + agent from the factory; runc: shim");
      add("shim_uss_mb_10_warm", "MB", x.shim.uss, r.runc[10].shim.uss);
      add("agent_uss_mb_10_warm", "MB", x.agent.uss, NaN, "the factory's agent, adopted by the shim");
    }
  }
  if (only.has("state")) {
    const { stateBench } = await import("./state-rpc.mjs");
    const r = await stateBench(ctd, rootfs, { log });
    details.state = r;
    add("state_seq_calls_per_s", "calls/s", r.shimlab.seq.rate, r.runc.seq.rate, "higher is better");
    add("state_seq_p50_us", "µs", r.shimlab.seq.p50, r.runc.seq.p50);
    add("state_seq_p99_us", "µs", r.shimlab.seq.p99, r.runc.seq.p99);
    add("state_16_calls_per_s", "calls/s", r.shimlab.c16.rate, r.runc.c16.rate, "higher is better");
    add("state_16_p50_us", "µs", r.shimlab.c16.p50, r.runc.c16.p50);
    add("state_16_p99_us", "µs", r.shimlab.c16.p99, r.runc.c16.p99);
  }
  if (only.has("gostate")) {
    const { goBinary } = dist("harness/peers/go.js");
    let go = null;
    try {
      go = goBinary();
    } catch (e) {
      log(`gostate skipped: ${e.message}`);
    }
    if (go) {
      const { goStateBench } = await import("./go-state-rpc.mjs");
      const r = await goStateBench(ctd, rootfs, { log });
      details.gostate = r;
      const n = r.callers;
      const note = `Go ttrpc ${r.ttrpc} client, median of ${r.rounds} rounds`;
      add("go_state_seq_calls_per_s", "calls/s", r.shimlab.seq.rate, r.runc.seq.rate, `${note}; higher is better`);
      add("go_state_seq_p50_us", "µs", r.shimlab.seq.p50, r.runc.seq.p50, note);
      add("go_state_seq_p99_us", "µs", r.shimlab.seq.p99, r.runc.seq.p99, note);
      add(`go_state_${n}_calls_per_s`, "calls/s", r.shimlab.many.rate, r.runc.many.rate, `${note}, ${n} callers on one connection; higher is better`);
      add(`go_state_${n}_p50_us`, "µs", r.shimlab.many.p50, r.runc.many.p50, note);
      add(`go_state_${n}_p99_us`, "µs", r.shimlab.many.p99, r.runc.many.p99, note);
    }
  }
} finally {
  await ctd.destroy().catch((e) => log(`containerd teardown: ${e.message}`));
  // the factory first: its ready parked daemons wait in the cgroups of the last `start` that took
  // one, containerd's accounting cgroup among them, which is removable only once they are gone
  if (factoryUp) {
    log(lifecycleFactory.status());
    lifecycleFactory.stop();
  }
  cpu?.remove();
  removeCgroupDirs(ctd.cgroupParent);
  fs.rmSync(path.dirname(rootfs), { recursive: true, force: true });
  if (variantDir) fs.rmSync(variantDir, { recursive: true, force: true });
}
if (only.has("cri")) {
  const { criBench } = await import("./cri.mjs");
  const r = await criBench({ runs: Math.max(5, Math.round(runs / 2)), warm, log });
  details.cri = r;
  const note = "through containerd's CRI, timed from the CRI client (median)";
  add("cri_runpodsandbox_ms", "ms", r.shimlab.runPod.median, r.runc.runPod.median, note);
  add("cri_start_container_ms", "ms", r.shimlab.container.median, r.runc.container.median, `CreateContainer + StartContainer ${note}`);
  add("cri_execsync_ms", "ms", r.shimlab.exec.median, r.runc.exec.median, note);
  add("cri_teardown_ms", "ms", r.shimlab.teardown.median, r.runc.teardown.median, `StopPodSandbox + RemovePodSandbox ${note}`);
  add("cri_pod_rss_mb", "MB", r.shimlab.rssKb.median / 1024, r.runc.rssKb.median / 1024, "RSS of what serves one pod: shim + agent, or runc's shim");
  if (warm) {
    add("cri_runpodsandbox_ms_warm", "ms", r["shimlab-warm"].runPod.median, r.runc.runPod.median, `${note}; the agent from a factory`);
    add("cri_start_container_ms_warm", "ms", r["shimlab-warm"].container.median, r.runc.container.median, `CreateContainer + StartContainer ${note}; the agent from a factory`);
  }
}
if (only.has("qemu")) {
  const { qemuPodBench } = await import("./qemu-pod.mjs");
  const r = await qemuPodBench({ runs: 3, log });
  if (r) {
    details.qemu = r;
    const note = "RunPodSandbox to the first container running (+ CreateContainer, StartContainer), CNI network, TCG; runc's pod on the same network (median of 3)";
    add("qemu_pod_ready_ms", "ms", r["shimlab-qemu"].median, r.runc.median, `${note}; the shim boots its VM`);
    add("qemu_pod_ready_ms_warm", "ms", r["shimlab-qemu-warm"].median, r.runc.median, `${note}; a warm VM from a factory, its NIC plugged in at handout`);
    add("qemu_pool_idle_cpu_pct", "% CPU", r.poolIdle.treePct, NaN, "a factory with one warm QEMU VM and one parked daemon, idle: the CPU of the factory's whole process tree (its VM's QEMU alone in details.qemu.poolIdle), over 5 s");
  }
}
if (only.has("echo")) {
  const { echoBench } = await import("./echo.mjs");
  const r = await echoBench({ log });
  details.echo = r;
  add("ttrpc_echo_seq_calls_per_s", "calls/s", r.seq.rate, NaN, "shimlab's ttrpc client+server alone (server in a child process)");
  add("ttrpc_echo_seq_p50_us", "µs", r.seq.p50, NaN);
  add("ttrpc_echo_16_calls_per_s", "calls/s", r.c16.rate, NaN);
}

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
console.log(`\nshimlab vs containerd-shim-runc-v2 — ${where.mode} (taskset cpus ${where.cpus}), node ${process.version}, load ${loadavg().join(" ")}`);
console.log(`${pad("name", 30)} ${pad("unit", 8)} ${lpad("shimlab", 10)} ${lpad("runc", 10)} ${lpad("ratio", 7)}`);
for (const r of rows) console.log(`${pad(r.name, 30)} ${pad(r.unit, 8)} ${lpad(r.shimlab ?? "-", 10)} ${lpad(r.runc ?? "-", 10)} ${lpad(r.ratio ?? "-", 7)}`);
fs.writeFileSync(outFile, JSON.stringify(rows, null, 2) + "\n");
fs.writeFileSync(outFile.replace(/\.json$/, ".details.json"), JSON.stringify({ placement: where, node: process.version, date: new Date().toISOString(), details }, null, 2) + "\n");
log(`wrote ${outFile}`);
