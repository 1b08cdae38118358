// Two shims, the same checks: a diff of statuses and of what each shim
// answered (call outcomes, states, event sequences). A difference is
// "documented" when a check recorded it as depending on a profile difference.
import { DIFFERENCES, EQUIVALENCES } from "./profiles";
import type { SuiteReport } from "./types";

export interface Difference {
  check: string;
  key: string;
  a: string;
  b: string;
  /** The documented difference's name, or null when nothing documents it. */
  documented: string | null;
}

export interface Comparison {
  a: string;
  b: string;
  differences: Difference[];
  undocumented: number;
}

export function compareReports(a: SuiteReport, b: SuiteReport): Comparison {
  const diffs: Difference[] = [];
  const bByName = new Map(b.checks.map((c) => [c.name, c]));
  for (const ca of a.checks) {
    const cb = bByName.get(ca.name);
    if (!cb) continue;
    if (ca.status !== cb.status) diffs.push({ check: ca.name, key: "status", a: `${ca.status}${ca.status === "pass" ? "" : `: ${ca.detail}`}`, b: `${cb.status}${cb.status === "pass" ? "" : `: ${cb.detail}`}`, documented: null });
    const keys = new Set([...ca.observations.map((o) => o.key), ...cb.observations.map((o) => o.key)]);
    for (const key of keys) {
      const oa = ca.observations.filter((o) => o.key === key);
      const ob = cb.observations.filter((o) => o.key === key);
      const va = oa.map((o) => o.value).join(" | ") || "(none)";
      const vb = ob.map((o) => o.value).join(" | ") || "(none)";
      if (va === vb) continue;
      const eq = EQUIVALENCES.find((e) => e.applies(key) && e.normalize(va) === e.normalize(vb));
      const doc = [...oa, ...ob].find((o) => o.documented)?.documented ?? eq?.name ?? null;
      diffs.push({ check: ca.name, key, a: va, b: vb, documented: doc });
    }
  }
  return { a: a.shim, b: b.shim, differences: diffs, undocumented: diffs.filter((d) => !d.documented).length };
}

export function formatComparison(c: Comparison, a: SuiteReport, b: SuiteReport): string {
  const out = [`compare  A = ${c.a} (profile ${a.profile}: ${a.counts.pass}/${a.checks.length} pass)`, `         B = ${c.b} (profile ${b.profile}: ${b.counts.pass}/${b.checks.length} pass)`, ""];
  if (!c.differences.length) out.push("no differences");
  let last = "";
  for (const d of c.differences) {
    if (d.check !== last) out.push(`${d.check}:`);
    last = d.check;
    out.push(`  ${d.key}`, `    A: ${d.a}`, `    B: ${d.b}`, `    ${d.documented ? `documented (${d.documented}): ${DIFFERENCES[d.documented]}` : "UNDOCUMENTED difference"}`);
  }
  out.push("", `${c.differences.length} differences, ${c.differences.length - c.undocumented} documented, ${c.undocumented} undocumented`);
  return out.join("\n") + "\n";
}
