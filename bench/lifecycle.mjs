// Lifecycle latency: `ctr run --rm --rootfs <busybox> <id> /bin/busybox true`
// through each runtime on one private containerd, interleaved run by run so
// that the machine's noise falls on both alike; then a traced pass that cuts
// each lifecycle into phases.
import fs from "node:fs";
import { RUNTIMES, timed } from "./lib/env.mjs";
import { runtimeOf } from "./lib/variants.mjs";
import { summary } from "./lib/stats.mjs";
import { ExecTrace, perfAvailable, processTree, lifecycles, PHASES } from "./lib/trace.mjs";

let seq = 0;
const runArgs = (ctd, rootfs, runtime) => ["--address", ctd.address, "--namespace", "default", "run", "--rm", "--runtime", runtime, "--rootfs", rootfs, `bench-${process.pid}-${seq++}`, "/bin/busybox", "true"];

async function once(ctd, rootfs, runtime, cpu) {
  const c0 = cpu?.usageMs();
  const r = await timed("ctr", runArgs(ctd, rootfs, runtime), { env: ctd.env() });
  if (r.code !== 0) throw new Error(`ctr run on ${runtime} failed (${r.code}): ${r.err}`);
  return { ms: r.ms, cpu: cpu ? (await settled(cpu)) - c0 : NaN };
}

/** pid's children now, as processTree's known: [pid, parent, the file it runs]. */
function childrenOf(pid) {
  const out = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      if (Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push([Number(d), pid, fs.readlinkSync(`/proc/${d}/exe`)]);
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/**
 * The cgroup's CPU once what the lifecycle started has finished: a shim daemon exits after its
 * Shutdown's answer (shimlab's once its sandbox has stopped), so ctr's exit is not the end of its
 * work. Read at ctr's exit, that tail would be charged to the next run, another runtime's, and
 * would share its CPU. Settled: no growth over 10 ms (idle processes in the cgroup, containerd's
 * and a factory's, take a few µs), at most 1 s.
 */
async function settled(cpu, quietMs = 10, maxMs = 1000) {
  const t0 = performance.now();
  let last = cpu.usageMs();
  let since = t0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 2));
    const u = cpu.usageMs();
    const now = performance.now();
    if (u - last > 0.05) (last = u), (since = now);
    else if (now - since >= quietMs || now - t0 >= maxMs) return u;
  }
}

/** after(runtime): awaited after each lifecycle, outside its figures (a warm variant's pool refilled). */
/**
 * factoryPid: the warm variant's factory, whose parked daemons and pooled agents are not
 * containerd's descendants; with it, that variant is traced too.
 */
export async function lifecycleBench(ctd, rootfs, { runs = 20, warmup = 2, variants = [], cpu = null, after = async () => {}, factoryPid = 0, log = () => {} } = {}) {
  const all = { ...RUNTIMES, ...Object.fromEntries(variants.map((v) => [v, runtimeOf(v)])) };
  const names = Object.keys(all);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  const cpuSamples = Object.fromEntries(names.map((n) => [n, []]));
  for (let i = 0; i < warmup; i++) for (const rt of names) await once(ctd, rootfs, all[rt], cpu), await after(rt);
  for (let i = 0; i < runs; i++) {
    // rotate which goes first, so none always follows another's teardown
    const order = names.map((_, k) => names[(k + i) % names.length]);
    for (const rt of order) {
      const r = await once(ctd, rootfs, all[rt], cpu);
      samples[rt].push(r.ms);
      cpuSamples[rt].push(r.cpu);
      await after(rt);
    }
  }
  const wall = Object.fromEntries(names.map((n) => [n, summary(samples[n])]));
  const cpuMs = cpu ? Object.fromEntries(names.map((n) => [n, summary(cpuSamples[n])])) : null;
  log(`lifecycle wall (median of ${runs}): ${names.map((n) => `${n} ${wall[n].median.toFixed(1)} ms`).join(", ")}`);
  if (cpuMs) log(`lifecycle CPU of containerd+shims+agent+runc (median): ${names.map((n) => `${n} ${cpuMs[n].median.toFixed(1)} ms`).join(", ")}`);

  let phases = null;
  if (perfAvailable()) {
    phases = {};
    const traced = { ...RUNTIMES, ...(factoryPid && all["shimlab-warm"] ? { "shimlab-warm": all["shimlab-warm"] } : {}) };
    for (const rt of Object.keys(traced)) {
      const tr = new ExecTrace();
      const known = rt === "shimlab-warm" ? childrenOf(factoryPid) : [];
      await tr.start();
      for (let i = 0; i < Math.max(5, Math.floor(runs / 2)); i++) await once(ctd, rootfs, traced[rt], cpu), await after(rt);
      const events = await tr.stop();
      const roots = [process.pid, ctd.pid, ...(rt === "shimlab-warm" ? [factoryPid] : [])];
      const lcs = lifecycles(processTree(events, roots, known), process.pid, ctd.pid, rt === "shimlab-warm" ? factoryPid : 0);
      const ok = lcs.filter(Boolean);
      const med = {};
      for (const k of [...PHASES, "container", "total", "daemon_lifetime", "delete_subcommand", "teardown", "runc_calls"]) med[k] = ok.length ? summary(ok.map((p) => p[k])).median : null;
      phases[rt] = { traced: lcs.length, complete: ok.length, median: med };
      log(`lifecycle phases ${rt}: ${ok.length}/${lcs.length} traced, total ${med.total?.toFixed(1)} ms`);
    }
  } else {
    log("perf not available (or not root): no phase split");
  }
  return { wall, cpu: cpuMs, phases };
}
