// The fuzz loop: seeds from each target, mutated, fed one at a time, with a
// time budget per input and the heap watched, until a count is reached.
import { mutate } from "./mutate";
import { Rng } from "./random";
import { frameTarget, messageTargets, startStdinTarget, type Target } from "./targets";

export interface FuzzOptions {
  iterations: number;
  seed: number;
  /** An input that takes longer than this is a hang. */
  slowMs?: number;
  onProgress?: (done: number, total: number) => void;
  targets?: Target[];
}

export interface FuzzFinding {
  target: string;
  kind: "crash" | "hang";
  error: string;
  input: string; // base64
}

export interface FuzzReport {
  iterations: number;
  seed: number;
  targets: number;
  findings: FuzzFinding[];
  ms: number;
  heapStartMb: number;
  heapPeakMb: number;
  heapEndMb: number;
  slowestMs: number;
}

export function allTargets(): Target[] {
  return [frameTarget(), startStdinTarget(), ...messageTargets()];
}

export function fuzz(o: FuzzOptions): FuzzReport {
  const targets = o.targets ?? allTargets();
  const r = new Rng(o.seed);
  const pools = new Map<Target, Buffer[]>(targets.map((t) => [t, Array.from({ length: 8 }, () => t.seed(r))]));
  const findings: FuzzFinding[] = [];
  const t0 = performance.now();
  const heapStart = process.memoryUsage().heapUsed;
  let heapPeak = heapStart;
  let slowest = 0;
  const slowMs = o.slowMs ?? 250;
  for (let i = 0; i < o.iterations; i++) {
    const t = targets[i % targets.length];
    const pool = pools.get(t)!;
    const base = r.chance(0.05) ? t.seed(r) : r.pick(pool);
    const input = r.chance(0.02) ? r.bytes(r.int(64)) : mutate(base, r, r.pick(pool));
    const s = performance.now();
    try {
      t.run(input);
    } catch (e) {
      if (findings.length < 50) findings.push({ target: t.name, kind: "crash", error: String((e as Error)?.stack ?? e).split("\n").slice(0, 4).join(" | "), input: input.toString("base64") });
    }
    const d = performance.now() - s;
    if (d > slowest) slowest = d;
    if (d > slowMs && findings.length < 50) findings.push({ target: t.name, kind: "hang", error: `${d.toFixed(0)} ms`, input: input.toString("base64") });
    // keep some mutants as future bases, so mutations compound
    if (r.chance(0.01)) pool[r.int(pool.length)] = input;
    if ((i & 0x3fff) === 0) {
      const h = process.memoryUsage().heapUsed;
      if (h > heapPeak) heapPeak = h;
      o.onProgress?.(i, o.iterations);
    }
  }
  const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
  return {
    iterations: o.iterations,
    seed: o.seed,
    targets: targets.length,
    findings,
    ms: Math.round(performance.now() - t0),
    heapStartMb: mb(heapStart),
    heapPeakMb: mb(heapPeak),
    heapEndMb: mb(process.memoryUsage().heapUsed),
    slowestMs: Math.round(slowest * 10) / 10,
  };
}
