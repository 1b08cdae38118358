// shimlab trace render <trace.jsonl|dir> -o out.html [--format html|mermaid]
// shimlab trace doc [-o docs/lifecycle.md]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { citation } from "../../contract/cite";
import { dispatch, str, UsageError } from "../args";

export function traceCommand(argv: string[]): Promise<number> {
  return dispatch(["trace"], argv, (sub, p) => (sub === "render" ? render(p.positionals[0], str(p, "out"), str(p, "format")) : doc(str(p, "out")!)));
}

async function render(input: string, out: string | undefined, format = ""): Promise<number> {
  if (!out) throw new UsageError("need -o <out>", ["trace", "render"]);
  if (!format) format = /\.(mmd|mermaid|md)$/.test(out) ? "mermaid" : "html";
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

async function doc(out: string): Promise<number> {
  const { runDemo } = await import("../lifecycle-demo");
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
