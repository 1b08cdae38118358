// Task.State from Go's ttrpc client, the one containerd uses
// (test/interop/cmd/state-bench), to runc's shim and to shimlab's: one running
// container each, measured by turns in the same run. Each round runs the
// client once per runtime (order alternating between rounds, so that neither
// always goes first); the figures are the medians over rounds.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { RUNTIMES, dist } from "./lib/env.mjs";
import { summary } from "./lib/stats.mjs";
import { withRunningTasks } from "./lib/tasks.mjs";

const run = promisify(execFile);

export async function goStateBench(ctd, rootfs, { log = () => {}, calls = 10_000, warmup = 1_000, callers = 16, rounds = 3 } = {}) {
  const { interopProgram, interopTtrpcVersion } = dist("harness/peers/interop.js");
  const bin = await interopProgram("state-bench");
  const ttrpc = interopTtrpcVersion();
  const rts = Object.keys(RUNTIMES);
  return withRunningTasks(ctd, rootfs, "gostate", async (tasks) => {
    const samples = Object.fromEntries(rts.map((rt) => [rt, []]));
    for (let r = 0; r < rounds; r++) {
      for (const rt of r % 2 ? [...rts].reverse() : rts) {
        const args = ["-address", tasks[rt].address, "-id", tasks[rt].id, "-n", String(calls), "-warmup", String(warmup), "-c", `1,${callers}`];
        const { stdout } = await run(bin, args, { timeout: 300_000 });
        const [seq, many] = JSON.parse(stdout);
        samples[rt].push({ seq, many });
        log(`Go ttrpc ${ttrpc} State ${rt} round ${r + 1}: seq ${seq.rate.toFixed(0)}/s p50 ${seq.p50_us.toFixed(1)} µs; ${callers} callers ${many.rate.toFixed(0)}/s p50 ${many.p50_us.toFixed(1)} µs`);
      }
    }
    const median = (xs) => summary(xs).median;
    const figures = (list) => ({ rate: median(list.map((x) => x.rate)), p50: median(list.map((x) => x.p50_us)), p99: median(list.map((x) => x.p99_us)) });
    const out = { ttrpc, callers, rounds, calls };
    for (const rt of rts) out[rt] = { seq: figures(samples[rt].map((s) => s.seq)), many: figures(samples[rt].map((s) => s.many)), samples: samples[rt] };
    return out;
  });
}
