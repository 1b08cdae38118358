// Writes what is generated from the scenario format and the fault kinds
// (dist/, so run after tsc): scenarios/scenario.schema.json, the JSON Schema
// editors complete scenario files with, and the fault table of
// scenarios/README.md. test/unit/scenario-format.test.ts fails while either lags.
//
//   node scripts/scenario-format.mjs
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const { scenarioJsonSchemaText } = require(path.join(ROOT, "dist", "scenarios", "format.js"));
const { regenerateFaultTable } = require(path.join(ROOT, "dist", "faults", "kinds", "table.js"));

const write = (rel, text) => {
  const f = path.join(ROOT, rel);
  if (fs.existsSync(f) && fs.readFileSync(f, "utf8") === text) return console.log(`scenario-format: ${rel} is up to date`);
  fs.writeFileSync(f, text);
  console.log(`scenario-format: wrote ${rel}`);
};

write("scenarios/scenario.schema.json", scenarioJsonSchemaText());
write("scenarios/README.md", regenerateFaultTable(fs.readFileSync(path.join(ROOT, "scenarios", "README.md"), "utf8")));
