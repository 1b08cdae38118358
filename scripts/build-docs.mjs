// The contract's pages as HTML, for a browser opening them from disk (the
// trace page links each ordering rule to dist/docs/contract/<page>.html#<rule>).
// Every Markdown page under docs/ is rendered with its generated blocks filled
// from the rules first (dist/contract/generate.js, so run after tsc): the HTML
// always matches the data even before `npm run docs:contract` has rewritten
// the Markdown. With --write, the Markdown pages themselves are rewritten.
//
//   node scripts/build-docs.mjs [--write]
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { Marked } from "marked";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const { regenerate } = require(path.join(ROOT, "dist", "contract", "generate.js"));
const DOCS = path.join(ROOT, "docs");
const OUT = path.join(ROOT, "dist", "docs");

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
export function slug(text) {
  return text
    .toLowerCase()
    .replace(/<[^>]+>/g, "")
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .trim()
    .replace(/\s/g, "-");
}

const esc = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

function pages(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? pages(p) : e.name.endsWith(".md") ? [p] : [];
  });
}

/**
 * A link as the HTML page needs it: a page of docs/ becomes its .html beside
 * it in dist/docs; a file elsewhere in the repository is reached relative to
 * where the HTML lands (it exists in a checkout, not in an installed copy).
 */
function rewriteHref(href, srcFile, outFile) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith("#")) return href;
  const [target, hash] = href.split("#");
  const abs = path.resolve(path.dirname(srcFile), target);
  if (abs.startsWith(DOCS + path.sep) && abs.endsWith(".md")) {
    const html = path.join(OUT, path.relative(DOCS, abs)).replace(/\.md$/, ".html");
    return path.relative(path.dirname(outFile), html) + (hash !== undefined ? `#${hash}` : "");
  }
  if (abs.startsWith(DOCS + path.sep) && (fs.existsSync(abs) && fs.statSync(abs).isDirectory())) {
    const html = path.join(OUT, path.relative(DOCS, abs), "README.html");
    return path.relative(path.dirname(outFile), html);
  }
  return path.relative(path.dirname(outFile), abs) + (hash !== undefined ? `#${hash}` : "");
}

function render(srcFile, markdown) {
  const outFile = path.join(OUT, path.relative(DOCS, srcFile)).replace(/\.md$/, ".html");
  const marked = new Marked({ gfm: true });
  marked.use({
    renderer: {
      heading({ tokens, depth, text }) {
        // The anchor from the Markdown source (entities not yet escaped), as GitHub makes it.
        return `<h${depth} id="${slug(text)}">${this.parser.parseInline(tokens)}</h${depth}>\n`;
      },
      link({ href, title, tokens }) {
        const t = title ? ` title="${esc(title)}"` : "";
        return `<a href="${esc(rewriteHref(href, srcFile, outFile))}"${t}>${this.parser.parseInline(tokens)}</a>`;
      },
    },
  });
  const body = marked.parse(markdown);
  const title = (markdown.match(/^# (.+)$/m) ?? [, path.basename(srcFile)])[1];
  const index = path.relative(path.dirname(outFile), path.join(OUT, "contract", "README.html"));
  const guide = path.relative(path.dirname(outFile), path.join(OUT, "README.html"));
  return {
    outFile,
    html: `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} — shimlab</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:15px/1.55 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 24px 60px;color:#222}
nav{padding:10px 0;border-bottom:1px solid #ddd;font-size:13px} nav a{margin-right:14px}
code{font:13px ui-monospace,monospace;background:#f3f3f3;padding:1px 4px;border-radius:3px}
pre{background:#f6f6f6;padding:10px;overflow:auto} pre code{background:none;padding:0}
table{border-collapse:collapse;margin:12px 0;font-size:14px} td,th{border:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f8} td:first-child{white-space:nowrap}
tr:has(a[id]:target){background:#fff3c4;outline:2px solid #e0b000}
a[id]:target + code{background:#ffe08a}
</style></head>
<body><nav><a href="${esc(guide)}">shimlab docs</a><a href="${esc(index)}">the shim v2 contract</a><span>${esc(path.relative(ROOT, srcFile))}</span></nav>
${body}</body></html>
`,
  };
}

const write = process.argv.includes("--write");
let n = 0;
for (const f of pages(DOCS)) {
  const text = fs.readFileSync(f, "utf8");
  const full = regenerate(text);
  if (write && full !== text) {
    fs.writeFileSync(f, full);
    console.log(`build-docs: rewrote the generated blocks of ${path.relative(ROOT, f)}`);
  }
  const { outFile, html } = render(f, full);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, html);
  n++;
}
console.log(`build-docs: ${n} pages → ${path.relative(ROOT, OUT)}/`);
