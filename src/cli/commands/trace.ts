// shimlab trace render <trace.jsonl|dir> -o out.html [--format html|mermaid]
// shimlab trace doc [-o docs/lifecycle.md]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { citation } from "../../contract/cite";

const USAGE = `usage:
  shimlab trace render <trace.jsonl | trace dir> -o <out> [--format html|mermaid]
      one self-contained page (or a Mermaid sequenceDiagram) of a trace written
      with SHIMLAB_TRACE=<file> (or <dir>/ for a file per process)
  shimlab trace doc [-o docs/lifecycle.md]
      runs the demo with tracing and writes the Markdown walkthrough from it
`;

export async function traceCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "render") return render(rest);
  if (sub === "doc") return doc(rest);
  if (sub === "-h" || sub === "--help" || sub === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  process.stderr.write(`shimlab trace: ${sub ? `unknown subcommand ${JSON.stringify(sub)}` : "missing subcommand"}\n\n${USAGE}`);
  return 2;
}

async function render(argv: string[]): Promise<number> {
  let input: string | undefined;
  let out: string | undefined;
  let format = "";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-o" || a === "--out") out = argv[++i];
    else if (a === "--format" || a === "-f") format = argv[++i] ?? "";
    else if (a.startsWith("--format=")) format = a.slice("--format=".length);
    else if (a === "-h" || a === "--help") {
      process.stdout.write(USAGE);
      return 0;
    } else if (a.startsWith("-")) {
      process.stderr.write(`shimlab trace render: unknown flag ${a}\n`);
      return 2;
    } else if (!input) input = a;
    else {
      process.stderr.write(`shimlab trace render: one trace at a time (got ${input} and ${a})\n`);
      return 2;
    }
  }
  if (!input || !out) {
    process.stderr.write(`shimlab trace render: need a trace and -o <out>\n\n${USAGE}`);
    return 2;
  }
  if (!format) format = /\.(mmd|mermaid|md)$/.test(out) ? "mermaid" : "html";
  if (format !== "html" && format !== "mermaid") {
    process.stderr.write(`shimlab trace render: --format ${format}: want html or mermaid\n`);
    return 2;
  }
  const { readTrace, buildModel } = await import("../../trace/model");
  let model;
  try {
    model = buildModel(readTrace(input));
  } catch (e) {
    process.stderr.write(`shimlab trace render: ${(e as Error).message}\n`);
    return 1;
  }
  if (format === "html") {
    const { renderHtml } = await import("../../trace/html");
    fs.writeFileSync(out, renderHtml(model, { source: path.resolve(input) }));
  } else {
    const { renderMermaid } = await import("../../trace/mermaid");
    // A Markdown file gets the fences GitHub and most viewers render.
    const text = renderMermaid(model);
    fs.writeFileSync(out, out.endsWith(".md") ? "```mermaid\n" + text + "```\n" : text);
  }
  const must = model.violations.filter((v) => v.level === "MUST").length;
  process.stdout.write(`${out}: ${model.arrows.length} arrows, ${model.lanes.length} lanes, ${model.events.length} events, ${must} MUST ordering violation(s)\n`);
  for (const v of model.violations) process.stdout.write(`  ${v.level} ${citation(v.rule)}: ${v.message}\n`);
  return 0;
}

async function doc(argv: string[]): Promise<number> {
  let out = "docs/lifecycle.md";
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "-o" || argv[i] === "--out") out = argv[++i];
    else {
      process.stderr.write(`shimlab trace doc: unknown argument ${argv[i]}\n`);
      return 2;
    }
  }
  const { runDemo } = await import("../demo");
  const { readTrace, buildModel } = await import("../../trace/model");
  const { renderMarkdown } = await import("../../trace/markdown");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-doc-"));
  try {
    const r = await runDemo({ dir, quiet: true, noHtml: true });
    const model = buildModel(readTrace(r.tracePath!));
    const intro = [
      "What containerd asks, what the shim does, what the agent runs, which files appear where, and in which",
      "order events go out: one pod (a sandbox and two containers), an exec, a kill and the teardown, played",
      "by shimlab's containerd stand-in against shimlab's shim binary and its mock kata agent" +
        (r.isolated ? " (containers under runc)." : " (containers as host processes: this run had no root, runc or busybox)."),
    ].join("\n");
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    fs.writeFileSync(out, renderMarkdown(model, { runDir: dir, intro, command: "npm run docs:lifecycle" }));
    process.stdout.write(`${out}: written from ${model.records.length} trace lines (${model.violations.length} ordering violations)\n`);
    return model.violations.some((v) => v.level === "MUST") ? 1 : 0;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
