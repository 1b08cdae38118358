// One self-contained page for a trace: an SVG sequence diagram (a lane per
// party, an arrow per call, reply, event and process change), the event
// timeline with the ordering rules, each process's state machine and the
// files. Inline CSS and JS only: it opens from disk with no network. Every
// ordering rule checked or broken links to its entry in the contract's HTML
// form (a file:// URL, so it opens from a page on disk too).
import { ORDERING_RULES, rule } from "../contract/rules";
import { ruleHtmlUrl } from "../contract/cite";
import type { Arrow, Model, Row } from "./model";

const LANE_W = 190;
const GUTTER = 70;
const ROW_H = 26;
const HEAD_H = 44;

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const ms = (m: Model, t: number) => ((t - m.t0) / 1000).toFixed(1);

/** containerd↔shim and shim↔agent carry the longest labels: those gaps are wider. */
const GAP_AFTER: Record<string, number> = { containerd: 330, shim: 250, vm: 230 };

function laneX(m: Model): Map<string, number> {
  const x = new Map<string, number>();
  let at = GUTTER + LANE_W / 2;
  for (const l of m.lanes) {
    x.set(l.id, at);
    at += GAP_AFTER[l.id] ?? LANE_W;
  }
  return x;
}

function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

/** Where a rule's entry is: the contract's HTML page for it, with the rule id as the anchor. */
type RuleLink = (id: string) => string;

function arrowSvg(a: Arrow, y: number, x: Map<string, number>, m: Model, link: RuleLink): string {
  const x1 = x.get(a.from);
  const x2 = x.get(a.to);
  if (x1 === undefined || x2 === undefined) return "";
  const must = a.violations.some((v) => v.level === "MUST");
  const cls = ["arrow", a.style, a.error ? "error" : "", a.violations.length ? (must ? "violation" : "warning") : ""].filter(Boolean).join(" ");
  const dir = x2 >= x1 ? 1 : -1;
  const tip = x2 - dir * 3;
  const mid = (x1 + x2) / 2;
  const span = Math.max(Math.abs(x2 - x1), LANE_W) - 12;
  const label = (a.violations.length ? "⚠ " : "") + a.label;
  const title = [a.label, ...a.violations.map((v) => `${v.level} ${v.rule} violated: ${v.message}`)].join("\n");
  // The broken rules under the arrow, each a link to its entry.
  const broken = [...new Set(a.violations.map((v) => v.rule))];
  const links = broken
    .map((id, n) => `<a class="rule-link" href="${esc(link(id))}" data-rule="${esc(id)}"><text class="rule" x="${mid + (n - (broken.length - 1) / 2) * 200}" y="${y + 10}" text-anchor="middle">⚠ ${esc(id)}</text></a>`)
    .join("");
  return (
    `<g class="${cls}" data-i="${a.i}" data-from="${esc(a.from)}" data-to="${esc(a.to)}">` +
    `<title>${esc(title)}</title>` +
    `<line x1="${x1}" y1="${y}" x2="${tip}" y2="${y}" marker-end="url(#head-${a.style})"/>` +
    `<text x="${mid}" y="${y - 5}" text-anchor="middle">${esc(clip(label, Math.floor(span / 6.2)))}</text>` +
    `<text class="time" x="${GUTTER - 8}" y="${y + 4}" text-anchor="end">${ms(m, a.t)}</text>` +
    links +
    `</g>`
  );
}

function diagram(m: Model, link: RuleLink): string {
  const x = laneX(m);
  const width = Math.max(...x.values()) + LANE_W / 2 + 10;
  const height = HEAD_H + (m.rows.length + 1) * ROW_H;
  const parts: string[] = [];
  parts.push(`<svg id="diagram" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`);
  parts.push("<defs>");
  for (const s of ["call", "reply", "event", "process"]) {
    parts.push(`<marker id="head-${s}" class="tip ${s}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>`);
  }
  parts.push("</defs>");
  // Lifelines: a process lane is solid while the process lives.
  const live = new Map<string, [number, number]>();
  m.rows.forEach((r, idx) => {
    if (r.type !== "arrow") return;
    for (const id of [r.from, r.to]) {
      if (!id.startsWith("proc:")) continue;
      const cur = live.get(id);
      live.set(id, cur ? [cur[0], idx] : [idx, idx]);
    }
  });
  m.lanes.forEach((l) => {
    const lx = x.get(l.id)!;
    parts.push(`<g class="lane ${l.kind}" data-lane="${esc(l.id)}">`);
    parts.push(`<line class="lifeline" x1="${lx}" y1="${HEAD_H}" x2="${lx}" y2="${height}"/>`);
    const span = live.get(l.id);
    if (span) parts.push(`<rect class="alive" x="${lx - 3}" y="${HEAD_H + (span[0] + 0.5) * ROW_H}" width="6" height="${(span[1] - span[0]) * ROW_H + 4}"/>`);
    parts.push(`</g>`);
  });
  m.rows.forEach((r: Row, idx) => {
    const y = HEAD_H + (idx + 1) * ROW_H;
    if (r.type === "note") {
      parts.push(`<g class="note" data-i="${r.i}"><rect x="${GUTTER}" y="${y - ROW_H + 6}" width="${width - GUTTER - 10}" height="${ROW_H - 4}" rx="4"/><text x="${GUTTER + 10}" y="${y - 3}">${esc(r.text)}</text></g>`);
    } else if (r.type === "mark") {
      const lx = x.get(r.lane) ?? GUTTER;
      parts.push(`<g class="mark" data-i="${r.i}"><circle cx="${lx}" cy="${y - 4}" r="5"/><text x="${lx + 9}" y="${y}">${esc(r.text)}</text><text class="time" x="${GUTTER - 8}" y="${y}" text-anchor="end">${ms(m, r.t)}</text></g>`);
    } else parts.push(arrowSvg(r, y, x, m, link));
  });
  // Lane heads last, so they paint over the rows when the page's script keeps them in view.
  parts.push(`<g id="heads"><rect class="heads-bg" x="0" y="0" width="${width}" height="${HEAD_H - 4}"/>`);
  for (const l of m.lanes) {
    const lx = x.get(l.id)!;
    parts.push(`<g class="head ${l.kind}"><rect class="head-box" x="${lx - LANE_W / 2 + 8}" y="6" width="${LANE_W - 16}" height="${HEAD_H - 14}" rx="6"/>`);
    parts.push(`<text class="lane-label" x="${lx}" y="${HEAD_H / 2 + 3}" text-anchor="middle">${esc(clip(l.label, 26))}</text></g>`);
  }
  parts.push("</g>");
  parts.push("</svg>");
  return parts.join("\n");
}

function ruleAnchor(id: string, link: RuleLink, cls = "rule-link"): string {
  return `<a class="${cls}" href="${esc(link(id))}" data-rule="${esc(id)}" title="${esc(rule(id).text.replace(/`/g, ""))}">${esc(id)}</a>`;
}

function eventTable(m: Model, link: RuleLink): string {
  const checkedAt = new Map(m.arrows.map((a) => [a.i, a.checked]));
  const rows = m.events.map((e, n) => {
    const vs = m.violations.filter((v) => v.i === e.i);
    const ev = e.event;
    const broken = new Set(vs.map((v) => v.rule));
    const held = (checkedAt.get(e.i) ?? []).filter((id) => !broken.has(id));
    const cell = [
      ...vs.map((v) => `<span class="viol">⚠ ${v.level} ${ruleAnchor(v.rule, link)}: ${esc(v.message)}</span>`),
      ...(held.length ? [`<span class="held">✓ ${held.map((id) => ruleAnchor(id, link)).join(", ")}</span>`] : vs.length ? [] : ["✓"]),
    ].join("<br>");
    return `<tr class="${vs.length ? "bad" : "good"}" data-i="${e.i}"><td>${n + 1}</td><td>${ms(m, e.t)}</td><td><code>${esc(e.topic)}</code></td><td>${esc(String(ev.containerId ?? ""))}</td><td>${esc(String(ev.execId ?? (ev.id && ev.id !== ev.containerId ? ev.id : "")))}</td><td>${esc(JSON.stringify(ev))}</td><td>${cell}</td></tr>`;
  });
  return `<table class="events"><thead><tr><th>#</th><th>ms</th><th>topic</th><th>container</th><th>exec</th><th>payload</th><th>ordering rules</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function rulesList(m: Model, link: RuleLink): string {
  return (
    '<ul class="rules">' +
    ORDERING_RULES.map((r) => {
      const vs = m.violations.filter((v) => v.rule === r.id);
      const cls = vs.length ? (r.level === "MUST" ? "bad" : "warn") : "good";
      return `<li class="${cls}" data-rule="${r.id}"><b>${r.level}</b> ${ruleAnchor(r.id, link)}: ${esc(r.text.replace(/`/g, ""))} — ${vs.length ? `<span class="viol">${vs.length} violation${vs.length > 1 ? "s" : ""}</span>` : "held"}</li>`;
    }).join("") +
    "</ul>"
  );
}

function stateMachines(m: Model): string {
  if (!m.states.length) return "<p>No task was created in this trace.</p>";
  return m.states
    .map((p) => {
      const chain = p.steps
        .map((s, n) => `${n ? `<span class="op">—${esc(s.op)}→</span>` : ""}<span class="state ${s.status}" title="${ms(m, s.t)} ms">${s.status}<small>${ms(m, s.t)} ms</small></span>`)
        .join("");
      const bad = p.illegal.map((x) => `<span class="viol">⚠ illegal ${esc(x.op)} in state ${x.from} at ${ms(m, x.t)} ms</span>`).join(" ");
      return `<div class="machine"><div class="proc">${esc(p.proc)}</div><div class="chain">${chain} ${bad}</div></div>`;
    })
    .join("\n");
}

function sandboxMachines(m: Model): string {
  if (!m.sandboxes.length) return "<p>No sandbox was created through the Sandbox API in this trace (containerd 2.x with <code>sandboxer = \"shim\"</code> makes one).</p>";
  return m.sandboxes
    .map((sb) => {
      const chain = sb.steps
        .map((s, n) => `${n ? `<span class="op">—${esc(s.op)}→</span>` : ""}<span class="state ${s.status}" title="${ms(m, s.t)} ms">${s.status}<small>${ms(m, s.t)} ms</small></span>`)
        .join("");
      const bad = sb.illegal.map((x) => `<span class="viol">⚠ illegal ${esc(x.op)} in state ${x.from} at ${ms(m, x.t)} ms</span>`).join(" ");
      const calls = sb.calls.map((c) => `<span class="${c.ok ? "call-ok" : "viol"}" title="${ms(m, c.t)} ms">${esc(c.method)}${c.ok ? "" : ` ✗ ${esc(c.code ?? "")}`}</span>`).join(" → ");
      return `<div class="machine sandbox"><div class="proc">${esc(sb.sandbox)}</div><div class="chain">${chain} ${bad}</div><div class="calls">${calls}</div></div>`;
    })
    .join("\n");
}

function fileTable(m: Model): string {
  if (!m.files.length) return "<p>No files were watched in this trace (files are seen by the containerd side: <code>shimlab demo</code> watches them).</p>";
  const rows = m.files.map((f) => `<tr class="${f.op}"><td>${ms(m, f.t)}</td><td>${f.op}</td><td>${esc(f.type)}</td><td><code>${esc(f.path)}</code></td><td>${esc(f.during)}</td></tr>`);
  return `<table class="files"><thead><tr><th>ms</th><th>what</th><th>type</th><th>path</th><th>during</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:12px 20px;background:#1d2b3a;color:#fff}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;color:#cdd}
main{padding:0 20px 40px} h2{margin-top:28px;border-bottom:1px solid #ccc}
.scroll{overflow:auto;max-height:80vh;border:1px solid #ddd;background:#fff}
svg text{font:11px ui-monospace,monospace;fill:#222}
.lifeline{stroke:#bbb;stroke-dasharray:3 4} .alive{fill:#c9d7f0}
.head-box{fill:#e8eef7;stroke:#7a8fb0} .head.process .head-box{fill:#eef7e8;stroke:#7fa36b}
.head.vm .head-box,.head.agent .head-box{fill:#f7f0e6;stroke:#b59a6b} .heads-bg{fill:#fff;opacity:.92}
.lane-label{font-weight:bold;font-size:12px}
.arrow line{stroke:#345;stroke-width:1.4} .arrow.reply line{stroke-dasharray:5 3;stroke:#678}
.arrow.event line{stroke:#c77d00;stroke-width:1.8} .arrow.event text{fill:#8a5600}
.arrow.process line{stroke:#3c7d2e} .arrow.error line{stroke:#b00} .arrow.error text{fill:#b00}
.arrow.violation line{stroke:#e00;stroke-width:3} .arrow.violation text{fill:#e00;font-weight:bold}
.arrow.warning line{stroke:#e07000;stroke-width:2.5} .arrow.warning text{fill:#b55a00;font-weight:bold}
.arrow .time,.mark .time{fill:#888} .mark circle{fill:#7a8fb0} .mark text{font-style:italic;fill:#456} .arrow:hover line{stroke-width:3} .arrow{cursor:pointer}
.arrow.selected text{fill:#06c;font-weight:bold}
.arrow text.rule{font-size:9px;fill:#e00;text-decoration:underline} .rule-link{cursor:pointer} a.rule-link{color:inherit} .held{color:#275;font-size:11px}
.tip path{fill:#345} .tip.event path{fill:#c77d00} .tip.process path{fill:#3c7d2e} .tip.reply path{fill:#678}
.note rect{fill:#fff6d6;stroke:#e0c060} .note text{font-weight:bold;font-family:system-ui,sans-serif;font-size:12px}
table{border-collapse:collapse;background:#fff;font-size:12px} td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
tr.bad td{background:#ffe5e5} .viol{color:#d00;font-weight:bold} .rules li.bad{color:#d00} .rules li.warn{color:#b55a00} .rules li.good{color:#275}
.machine{display:flex;gap:12px;margin:6px 0;align-items:center} .proc{width:140px;font-weight:bold;font-family:ui-monospace,monospace}
.state{display:inline-block;padding:2px 10px;border-radius:12px;background:#e8eef7;border:1px solid #7a8fb0;margin:2px}
.state small{display:block;font-size:9px;color:#666} .state.running{background:#e3f5dc} .state.stopped{background:#f4e4d4} .state.deleted{background:#eee;color:#777} .state.paused{background:#fff3c4}
.op{color:#888;font-size:11px;margin:0 2px}
#detail{position:fixed;right:12px;bottom:12px;width:420px;max-height:45vh;overflow:auto;background:#fff;border:1px solid #999;box-shadow:0 2px 8px #0003;padding:8px;font:11px ui-monospace,monospace;white-space:pre-wrap;display:none}
.summary span{margin-right:18px} .ok{color:#275} .legend span{margin-right:14px}
`;

const JS = `
(function(){
  var data = JSON.parse(document.getElementById('trace-data').textContent);
  var detail = document.getElementById('detail');
  var sel = null;
  var ruleInfo = JSON.parse(document.getElementById('rule-data').textContent);
  function show(i){
    var r = data[i]; if(!r) return;
    detail.style.display='block';
    detail.textContent = '';
    (ruleInfo[i] || []).forEach(function(x){
      var line = document.createElement('div');
      line.className = x.broken ? 'viol' : 'held';
      line.appendChild(document.createTextNode((x.broken ? '⚠ broken: ' : '✓ held: ')));
      var a = document.createElement('a'); a.href = x.url; a.className = 'rule-link'; a.textContent = x.id;
      line.appendChild(a);
      detail.appendChild(line);
    });
    detail.appendChild(document.createTextNode(JSON.stringify(r, null, 2)));
  }
  Array.prototype.forEach.call(document.querySelectorAll('.arrow, .mark, .events tr[data-i]'), function(el){
    el.addEventListener('click', function(){
      if(sel) sel.classList.remove('selected');
      sel = el; el.classList.add('selected');
      show(Number(el.getAttribute('data-i')));
    });
  });
  detail.addEventListener('click', function(ev){ if(ev.target.tagName !== 'A') detail.style.display='none'; });
  document.getElementById('arrow-count').textContent = document.querySelectorAll('#diagram .arrow').length;
  var scroller = document.getElementById('scroller'), heads = document.getElementById('heads');
  scroller.addEventListener('scroll', function(){ heads.setAttribute('transform', 'translate(0,' + scroller.scrollTop + ')'); });
})();
`;

export interface HtmlOptions {
  title?: string;
  source?: string;
  /** The directory of the contract's HTML pages (default: the package's dist/docs/contract). */
  contractHtmlDir?: string;
}

export function renderHtml(m: Model, o: HtmlOptions = {}): string {
  const must = m.violations.filter((v) => v.level === "MUST").length;
  const should = m.violations.length - must;
  const dur = m.records.length ? ((m.records[m.records.length - 1].t - m.t0) / 1000).toFixed(0) : "0";
  const data = JSON.stringify(m.records).replace(/</g, "\\u003c");
  const title = o.title ?? "shimlab lifecycle trace";
  const link: RuleLink = (id) => ruleHtmlUrl(id, o.contractHtmlDir);
  // Per arrow, the rules tested there and whether they held: the detail panel lists them as links.
  const ruleData: Record<number, { id: string; url: string; broken: boolean }[]> = {};
  for (const a of m.arrows) {
    const broken = new Set(a.violations.map((v) => v.rule));
    const ids = [...new Set([...a.violations.map((v) => v.rule), ...a.checked])];
    if (ids.length) ruleData[a.i] = ids.map((id) => ({ id, url: link(id), broken: broken.has(id) }));
  }
  const rules = JSON.stringify(ruleData).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>${CSS}</style></head>
<body>
<header><h1>${esc(title)}</h1><p>${esc(o.source ?? "")} — ${m.records.length} trace lines from ${m.roles.length} processes over ${dur} ms</p></header>
<main>
<p class="summary"><span><b id="arrow-count">${m.arrows.length}</b> arrows</span><span><b>${m.lanes.length}</b> lanes</span><span><b>${m.events.length}</b> events</span>
<span class="${must ? "viol" : "ok"}">${must ? `⚠ ${must} MUST ordering violation${must > 1 ? "s" : ""}` : "✓ every MUST ordering held"}</span>${should ? `<span class="viol">${should} SHOULD violation${should > 1 ? "s" : ""}</span>` : ""}</p>
<p class="legend"><span>── call</span><span>- - reply</span><span style="color:#c77d00">── event to containerd</span><span style="color:#3c7d2e">── agent ↔ process</span><span style="color:#e00">red: ordering violated or call failed</span> · click an arrow for the whole record; <code>·sN</code> is the ttrpc stream id</p>
<h2>Sequence</h2>
<div class="scroll" id="scroller">${diagram(m, link)}</div>
<h2>Events, in the order they left the shim</h2>
<h3>Ordering rules</h3>
<p>Each rule links to its entry in shimlab's shim v2 contract (<code>docs/contract/events.md</code>).</p>
${rulesList(m, link)}
${eventTable(m, link)}
<h2>Each process's state machine</h2>
<p>Replayed from containerd's calls and the exit events through the shim's own state table (<code>src/pod/state.ts</code>).</p>
${stateMachines(m)}
<h2>Each sandbox (Sandbox API)</h2>
${sandboxMachines(m)}
<h2>Files</h2>
${fileTable(m)}
<h2>Processes that traced</h2>
<p>${m.roles.map((r) => `<code>${esc(r.role)}</code> pid ${r.pid}`).join(", ")}</p>
</main>
<div id="detail" title="click to close"></div>
<script type="application/json" id="trace-data">${data}</script>
<script type="application/json" id="rule-data">${rules}</script>
<script>${JS}</script>
</body></html>
`;
}
