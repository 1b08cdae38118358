// Task.State round trips straight to each shim's socket (the address
// containerd wrote in the bundle), for one running container per runtime.
import { RUNTIMES, dist, sleep } from "./lib/env.mjs";
import { roundTrips } from "./lib/rpc.mjs";
import { withRunningTask } from "./lib/tasks.mjs";

export async function stateBench(ctd, rootfs, { log = () => {}, calls = 10_000 } = {}) {
  const { Client } = dist("ttrpc/client.js");
  const { Task } = dist("gen/containerd.task.v2.js");
  const out = {};
  for (const rt of Object.keys(RUNTIMES)) {
    await withRunningTask(ctd, rootfs, rt, "state", async ({ id, address }) => {
      const client = await Client.dial(address, { connectTimeoutMs: 5_000 });
      try {
        const task = client.service(Task, { timeoutMs: 10_000 });
        const st = await task.State({ id });
        if (st.status !== 2) throw new Error(`${rt}: task ${id} is not running (status ${st.status})`);
        await sleep(200);
        out[rt] = await roundTrips(() => task.State({ id }), { calls });
        log(`State ${rt}: seq ${out[rt].seq.rate.toFixed(0)}/s p50 ${out[rt].seq.p50.toFixed(1)} µs; 16 callers ${out[rt].c16.rate.toFixed(0)}/s p50 ${out[rt].c16.p50.toFixed(1)} µs`);
      } finally {
        client.close();
      }
    });
  }
  return out;
}
