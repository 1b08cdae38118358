// Round trips on one ttrpc connection: sequential, then `callers` concurrent
// loops sharing it. The client is shimlab's own (src/ttrpc/client.ts) for
// every server measured, so its cost falls on both sides of a ratio alike.
import { summary } from "./stats.mjs";

async function loop(call, n, lat) {
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await call();
    lat.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
}

export async function roundTrips(call, { calls = 10_000, warmup = 1_000, callers = 16 } = {}) {
  await loop(call, warmup, []);
  const measure = async (k) => {
    const lat = [];
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: k }, (_, i) => loop(call, Math.floor(calls / k) + (i < calls % k ? 1 : 0), lat)));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const s = summary(lat);
    return { calls: lat.length, rate: lat.length / secs, p50: s.median, p99: s.p99 };
  };
  return { seq: await measure(1), c16: await measure(callers) };
}
