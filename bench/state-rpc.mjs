// Task.State round trips straight to each shim's socket (the address
// containerd wrote in the bundle), for one running container per runtime.
import fs from "node:fs";
import path from "node:path";
import { RUNTIMES, dist, sleep } from "./lib/env.mjs";
import { roundTrips } from "./lib/rpc.mjs";

export async function stateBench(ctd, rootfs, { log = () => {}, calls = 10_000 } = {}) {
  const { Client } = dist("ttrpc/client.js");
  const { Task } = dist("gen/containerd.task.v2.js");
  const out = {};
  for (const rt of Object.keys(RUNTIMES)) {
    const id = `state-${rt}-${process.pid}`;
    const r = await ctd.ctr(["run", "-d", "--runtime", RUNTIMES[rt], "--rootfs", rootfs, id, "/bin/busybox", "sleep", "300"]);
    if (r.code !== 0) throw new Error(`ctr run -d on ${rt}: ${r.err}`);
    let client;
    try {
      const address = fs.readFileSync(path.join(ctd.state, "io.containerd.runtime.v2.task", "default", id, "address"), "utf8").trim();
      client = await Client.dial(address, { connectTimeoutMs: 5_000 });
      const task = client.service(Task, { timeoutMs: 10_000 });
      const st = await task.State({ id });
      if (st.status !== 2) throw new Error(`${rt}: task ${id} is not running (status ${st.status})`);
      await sleep(200);
      out[rt] = await roundTrips(() => task.State({ id }), { calls });
      log(`State ${rt}: seq ${out[rt].seq.rate.toFixed(0)}/s p50 ${out[rt].seq.p50.toFixed(1)} µs; 16 callers ${out[rt].c16.rate.toFixed(0)}/s p50 ${out[rt].c16.p50.toFixed(1)} µs`);
    } finally {
      client?.close();
      await ctd.ctr(["task", "kill", "-s", "SIGKILL", id]);
      for (let i = 0; i < 50; i++) {
        const d = await ctd.ctr(["task", "delete", id]);
        if (d.code === 0 || /not found/.test(d.err)) break;
        await sleep(100);
      }
      await ctd.ctr(["container", "rm", id]);
    }
  }
  return out;
}
