// One running `sleep` container per runtime on the benchmark's containerd,
// with the address of its shim (what containerd wrote in the bundle), for
// the RPC benchmarks; killed and removed afterwards whatever happened.
import fs from "node:fs";
import path from "node:path";
import { RUNTIMES, sleep } from "./env.mjs";

export async function withRunningTask(ctd, rootfs, rt, name, fn) {
  const id = `${name}-${rt}-${process.pid}`;
  const r = await ctd.ctr(["run", "-d", "--runtime", RUNTIMES[rt], "--rootfs", rootfs, id, "/bin/busybox", "sleep", "300"]);
  if (r.code !== 0) throw new Error(`ctr run -d on ${rt}: ${r.err}`);
  try {
    const address = fs.readFileSync(path.join(ctd.state, "io.containerd.runtime.v2.task", "default", id, "address"), "utf8").trim();
    return await fn({ id, address });
  } finally {
    await ctd.ctr(["task", "kill", "-s", "SIGKILL", id]);
    for (let i = 0; i < 50; i++) {
      const d = await ctd.ctr(["task", "delete", id]);
      if (d.code === 0 || /not found/.test(d.err)) break;
      await sleep(100);
    }
    await ctd.ctr(["container", "rm", id]);
  }
}

/** Runs fn with a running task on every runtime at once. */
export async function withRunningTasks(ctd, rootfs, name, fn) {
  const rts = Object.keys(RUNTIMES);
  const step = async (i, acc) => (i === rts.length ? fn(acc) : withRunningTask(ctd, rootfs, rts[i], name, (t) => step(i + 1, { ...acc, [rts[i]]: t })));
  return step(0, {});
}
