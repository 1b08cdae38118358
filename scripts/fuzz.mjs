#!/usr/bin/env node
// npm run fuzz [-- --iterations N --seed S]: at least a million inputs through
// the frame reader and every message decoder the shim and the mock agent use.
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const { fuzz } = require("../dist/fuzz/fuzzer.js");

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const iterations = arg("--iterations", 1_000_000);
const seed = arg("--seed", Date.now() & 0xffffffff);
process.stdout.write(`fuzzing ${iterations} inputs, seed ${seed}\n`);
const report = fuzz({
  iterations,
  seed,
  onProgress: (done, total) => process.stdout.write(`\r  ${((done / total) * 100).toFixed(0).padStart(3)}%  ${done} inputs`),
});
process.stdout.write(`\r  100%  ${iterations} inputs\n`);
console.log(JSON.stringify({ ...report, findings: report.findings.length }, null, 2));
for (const f of report.findings.slice(0, 10)) console.log(`${f.kind} in ${f.target}: ${f.error}\n  input (base64): ${f.input}`);
process.exit(report.findings.length ? 1 : 0);
