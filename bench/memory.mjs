// Memory per pod: `ctr run -d … /bin/busybox sleep 300` 1, 10 and 30 times on
// each runtime, then RSS, PSS and USS (Private_Clean + Private_Dirty) of every
// shim daemon (and of shimlab's mock agent) from /proc/<pid>/smaps_rollup.
// Read twice: 2 s after the last start (when the first measurements here were taken), and at
// idle, 15 s after it, once V8's memory reducer has returned what start-up
// used (a pod lives for minutes or days, so idle is the figure that counts;
// the Go shim's hardly changes). Means per shim, in MB (10^6 bytes).
import fs from "node:fs";
import path from "node:path";
import { RUNTIMES, sleep } from "./lib/env.mjs";

function rollup(pid) {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  return { rss: kb("Rss"), pss: kb("Pss"), uss: kb("Private_Clean") + kb("Private_Dirty") };
}

const mean = (xs, k) => (xs.length ? xs.reduce((a, x) => a + x[k], 0) / xs.length / 1000 : NaN);
const summarise = (xs) => ({ count: xs.length, rss: mean(xs, "rss"), pss: mean(xs, "pss"), uss: mean(xs, "uss") });

/**
 * The shim daemon serving id: the process whose argv has `-id <id>` and our containerd's `-address`,
 * else the one its bundle's shim.pid names (a factory's parked daemon keeps its own argv).
 */
function shimPids(ctd, ids) {
  const want = new Set(ids);
  const found = new Map();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let argv;
    try {
      argv = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const at = (f) => (argv.indexOf(f) >= 0 ? argv[argv.indexOf(f) + 1] : undefined);
    const id = at("-id");
    if (want.has(id) && at("-address") === ctd.address && !argv.includes("start") && !argv.includes("delete")) found.set(id, Number(d));
  }
  for (const id of ids) {
    if (found.has(id)) continue;
    try {
      const pid = Number(fs.readFileSync(path.join(ctd.state, "io.containerd.runtime.v2.task", "default", id, "shim.pid"), "utf8"));
      if (pid > 0 && fs.existsSync(`/proc/${pid}`)) found.set(id, pid);
    } catch {
      /* no bundle: missing below */
    }
  }
  const missing = ids.filter((id) => !found.has(id));
  if (missing.length) throw new Error(`no shim process found for ${missing.join(", ")}`);
  return ids.map((id) => found.get(id));
}

async function runDetached(ctd, rootfs, runtime, id) {
  const r = await ctd.ctr(["run", "-d", "--runtime", runtime, "--rootfs", rootfs, id, "/bin/busybox", "sleep", "300"]);
  if (r.code !== 0) throw new Error(`ctr run -d ${id} on ${runtime}: ${r.err}`);
}

async function removeAll(ctd, ids) {
  for (const id of ids) await ctd.ctr(["task", "kill", "-s", "SIGKILL", id]);
  for (const id of ids) {
    for (let i = 0; i < 50; i++) {
      const r = await ctd.ctr(["task", "delete", id]);
      if (r.code === 0 || /not found/.test(r.err)) break;
      await sleep(100);
    }
    await ctd.ctr(["container", "rm", id]);
  }
}

/**
 * A shimlab sandbox's agent, by its VM record (the shim's run dir, SHIMLAB_RUN_DIR under the
 * containerd's dir): a factory's agent is not the shim's child, so a child lookup misses it.
 */
function agentOf(ctd, id) {
  try {
    return JSON.parse(fs.readFileSync(path.join(ctd.dir, "run", "default", id, "vm.json"), "utf8")).pid;
  } catch {
    return undefined;
  }
}

/** runtimes: name → runtime type; a name starting with "shimlab" has an agent to count. */
export async function memoryBench(ctd, rootfs, { runtimes = RUNTIMES, counts = [1, 10, 30], earlyMs = 2000, idleMs = 15000, log = () => {} } = {}) {
  const out = Object.fromEntries(Object.keys(runtimes).map((rt) => [rt, {}]));
  for (const rt of Object.keys(runtimes)) {
    const ids = [];
    try {
      for (const n of counts) {
        while (ids.length < n) {
          const id = `mem-${rt}-${process.pid}-${ids.length}`;
          await runDetached(ctd, rootfs, runtimes[rt], id);
          ids.push(id);
        }
        const t0 = Date.now();
        const shims = shimPids(ctd, ids);
        const agents = () => (rt.startsWith("shimlab") ? ids.map((id) => agentOf(ctd, id)).filter((p) => p && fs.existsSync(`/proc/${p}`)) : []);
        await sleep(earlyMs);
        const early = { shim: summarise(shims.map(rollup)), agent: summarise(agents().map(rollup)) };
        await sleep(Math.max(0, idleMs - (Date.now() - t0)));
        const a = agents();
        out[rt][n] = { shim: summarise(shims.map(rollup)), agent: summarise(a.map(rollup)), early };
        log(
          `memory ${rt} x${n} (idle): shim USS ${out[rt][n].shim.uss.toFixed(2)} MB PSS ${out[rt][n].shim.pss.toFixed(2)} MB` +
            (a.length ? `, agent USS ${out[rt][n].agent.uss.toFixed(2)} MB` : "") +
            `; at 2 s: shim USS ${early.shim.uss.toFixed(2)} MB`,
        );
      }
    } finally {
      await removeAll(ctd, ids);
    }
  }
  return out;
}
