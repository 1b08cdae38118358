// The same sequence as a Mermaid `sequenceDiagram`, for Markdown viewers.
import type { Model } from "./model";

/** Mermaid reads ';' as a statement end and '#' as an entity start in messages. */
function text(s: string): string {
  return s.replace(/#/g, "#35;").replace(/;/g, "#59;").replace(/\n/g, " ");
}

export function renderMermaid(m: Model, o: { maxLabel?: number } = {}): string {
  const max = o.maxLabel ?? 90;
  const alias = new Map<string, string>();
  const lines = ["sequenceDiagram"];
  m.lanes.forEach((l, n) => {
    const a = l.kind === "process" ? `P${n - 3}` : l.id;
    alias.set(l.id, a);
    lines.push(`  participant ${a} as ${text(l.label)}`);
  });
  const first = alias.get(m.lanes[0].id)!;
  const last = alias.get(m.lanes[m.lanes.length - 1].id)!;
  for (const r of m.rows) {
    if (r.type === "note") {
      lines.push(`  Note over ${first},${last}: ${text(r.text)}`);
      continue;
    }
    if (r.type === "mark") {
      const at = alias.get(r.lane);
      if (at) lines.push(`  Note right of ${at}: ${text(r.text)}`);
      continue;
    }
    const from = alias.get(r.from);
    const to = alias.get(r.to);
    if (!from || !to) continue;
    const op = r.style === "reply" ? "-->>" : r.style === "event" ? "-)" : "->>";
    const label = r.label.length > max ? r.label.slice(0, max - 1) + "…" : r.label;
    lines.push(`  ${from}${op}${to}: ${text((r.violations.length ? "⚠ " : "") + label)}`);
    for (const v of r.violations) lines.push(`  Note over ${from},${to}: ${text(`${v.level} ${v.rule} violated: ${v.message}`)}`);
  }
  return lines.join("\n") + "\n";
}
