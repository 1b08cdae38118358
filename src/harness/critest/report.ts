// critest's results, read from ginkgo's JSON report (-ginkgo.json-report):
// one outcome per spec, keyed by its full text (the same key ginkgo's focus
// and skip match), and the comparisons the suite's bar is made of.
import fs from "node:fs";

export type Outcome = "passed" | "failed" | "skipped" | "left-out";

export interface SpecResult {
  /** Container texts and the leaf's, joined by spaces, as ginkgo matches -focus/-skip against it. */
  name: string;
  outcome: Outcome;
  /** ginkgo's own state: passed, failed, skipped, pending, panicked, timedout, interrupted, aborted. */
  state: string;
  /** Why it failed or skipped itself: the failure message's first informative line. */
  message: string;
  seconds: number;
  /** Tries ginkgo made (-ginkgo.flake-attempts): a spec that passed on its second is flaky, and said so. */
  attempts: number;
}

interface GinkgoSpecReport {
  ContainerHierarchyTexts?: string[] | null;
  LeafNodeText?: string;
  LeafNodeType?: string;
  State?: string;
  RunTime?: number;
  NumAttempts?: number;
  Failure?: { Message?: string } | null;
}

export function specName(containers: string[], leaf: string): string {
  return [...containers, leaf].join(" ");
}

/** The line of a gomega failure that says what went wrong (its header lines often only say "Expected"). */
function firstLine(msg: string): string {
  const lines = msg.split("\n").map((l) => l.trim()).filter(Boolean);
  const first = lines[0] ?? "";
  const desc = lines.slice(1).find((l) => l.includes("desc ="));
  if (first.endsWith(":") || first === "Expected") {
    const more = desc ?? lines.slice(1).find((l) => !l.startsWith("<")) ?? "";
    return `${first} ${more}`.slice(0, 400);
  }
  // critest's own words ("failed to create PodSandbox") name the step, the runtime's status says why.
  return (desc && !first.includes("desc =") ? `${first}: ${desc}` : first).slice(0, 400);
}

/**
 * Reads a ginkgo JSON report. Specs named in leftOut count as left out (the
 * suite's choice), other skipped or pending ones as skipped (critest's own
 * Skip(), e.g. no NRI socket; or a benchmark).
 */
export function readGinkgoReport(file: string, leftOut: ReadonlySet<string> = new Set()): SpecResult[] {
  const suites = JSON.parse(fs.readFileSync(file, "utf8")) as { SpecReports?: GinkgoSpecReport[] | null }[];
  const out: SpecResult[] = [];
  for (const suite of suites) {
    for (const s of suite.SpecReports ?? []) {
      if (s.LeafNodeType !== "It") continue;
      const name = specName(s.ContainerHierarchyTexts ?? [], s.LeafNodeText ?? "");
      const state = s.State ?? "unknown";
      const outcome: Outcome = leftOut.has(name) ? "left-out" : state === "passed" ? "passed" : state === "skipped" || state === "pending" ? "skipped" : "failed";
      out.push({ name, outcome, state, message: firstLine(s.Failure?.Message ?? ""), seconds: (s.RunTime ?? 0) / 1e9, attempts: s.NumAttempts ?? 1 });
    }
  }
  return out;
}

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
  leftOut: number;
}

export function countOutcomes(results: SpecResult[]): Counts {
  const c: Counts = { passed: 0, failed: 0, skipped: 0, leftOut: 0 };
  for (const r of results) {
    if (r.outcome === "left-out") c.leftOut++;
    else c[r.outcome]++;
  }
  return c;
}

/** Specs that pass on the baseline and do not pass on the other run (missing from it counts as not passing). */
export function regressions(baseline: SpecResult[], other: SpecResult[]): SpecResult[] {
  const seen = new Map(other.map((r) => [r.name, r]));
  return baseline
    .filter((b) => b.outcome === "passed" && seen.get(b.name)?.outcome !== "passed")
    .map((b) => seen.get(b.name) ?? { name: b.name, outcome: "failed", state: "missing", message: "not in this run's report", seconds: 0, attempts: 0 });
}
