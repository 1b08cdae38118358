// The suite's critest summary: per containerd version and handler the counts,
// the run's duration, the failures with their first line, and against runc on
// the same containerd the specs that runc passes and the handler does not.
import { countOutcomes, regressions, type Counts, type SpecResult } from "./report";
import type { LeftOutSpec } from "./specs";

export interface SummaryRun {
  containerd: string;
  handler: string;
  results: SpecResult[];
  seconds: number;
  parallel: number;
  exitCode: number | null;
  jsonReport: string;
  junitReport: string;
  /** Mounts critest left in its own TMPDIR (removed after the run). */
  critestMountsLeft?: string[];
  /** The containerd difference that excuses a result here (specs.ts excusedBy), if one does. */
  excuse?: (r: SpecResult) => string | null;
}

export interface CritestSummary {
  critest: string;
  leftOut: readonly LeftOutSpec[];
  runs: {
    containerd: string;
    handler: string;
    counts: Counts;
    seconds: number;
    parallel: number;
    exitCode: number | null;
    reports: { json: string; junit: string };
    failed: { name: string; message: string }[];
    /** Specs that passed only on a second try (flaky here). */
    passedOnRetry: string[];
    /** Mounts critest's own failed specs left in its TMPDIR, which the harness removed. */
    critestMountsLeft?: string[];
    /** Specs that pass on runc (same containerd) and not here, with ginkgo's state here (or "missing"); absent for runc itself or without a runc run. */
    passOnRuncNotHere?: { name: string; outcome: string; message: string; excusedBy?: string }[];
  }[];
}

export function summarize(critestVersion: string, leftOut: readonly LeftOutSpec[], runs: SummaryRun[]): CritestSummary {
  return {
    critest: critestVersion,
    leftOut,
    runs: runs.map((r) => {
      const runc = r.handler === "runc" ? undefined : runs.find((b) => b.containerd === r.containerd && b.handler === "runc");
      return {
        containerd: r.containerd,
        handler: r.handler,
        counts: countOutcomes(r.results),
        seconds: Math.round(r.seconds * 10) / 10,
        parallel: r.parallel,
        exitCode: r.exitCode,
        reports: { json: r.jsonReport, junit: r.junitReport },
        failed: r.results.filter((x) => x.outcome === "failed").map((x) => ({ name: x.name, message: x.message })),
        passedOnRetry: r.results.filter((x) => x.outcome === "passed" && x.attempts > 1).map((x) => x.name),
        ...(r.critestMountsLeft?.length ? { critestMountsLeft: r.critestMountsLeft } : {}),
        ...(runc
          ? {
              passOnRuncNotHere: regressions(runc.results, r.results).map((x) => {
                const why = r.excuse?.(x);
                return { name: x.name, outcome: x.state, message: x.message, ...(why ? { excusedBy: why } : {}) };
              }),
            }
          : {}),
      };
    }),
  };
}

export function formatSummary(s: CritestSummary): string {
  const lines = [`critest ${s.critest}: ${s.leftOut.length} spec(s) left out on every run`];
  lines.push("containerd  handler        passed  failed  skipped  left-out  seconds  nodes  runc-passes-not-here (excused by containerd)");
  for (const r of s.runs) {
    const c = r.counts;
    lines.push(
      [
        r.containerd.padEnd(10),
        r.handler.padEnd(13),
        String(c.passed).padStart(6),
        String(c.failed).padStart(6),
        String(c.skipped).padStart(7),
        String(c.leftOut).padStart(8),
        r.seconds.toFixed(1).padStart(7),
        String(r.parallel).padStart(5),
        r.passOnRuncNotHere ? `${String(r.passOnRuncNotHere.filter((x) => !x.excusedBy).length).padStart(4)} (${r.passOnRuncNotHere.filter((x) => x.excusedBy).length})` : "   -",
      ].join("  "),
    );
  }
  for (const r of s.runs) {
    for (const n of r.passedOnRetry) lines.push(`  containerd ${r.containerd} ${r.handler}: passed on a second try (flaky): ${n}`);
    for (const x of r.passOnRuncNotHere ?? []) {
      lines.push(`  containerd ${r.containerd} ${r.handler}: passes on runc, ${x.outcome} here${x.excusedBy ? ` (excused: ${x.excusedBy})` : ""}: ${x.name}\n      ${x.message}`);
    }
  }
  return lines.join("\n");
}
