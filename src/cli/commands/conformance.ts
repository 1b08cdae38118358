// shimlab conformance --shim PATH [--profile NAME] [--junit FILE] [--json FILE] [--only REGEX]
// shimlab conformance --compare SHIM_A SHIM_B [--profile-a NAME] [--profile-b NAME] [--json FILE]
import fs from "node:fs";
import { runSuite, selectChecks } from "../../harness/conformance/runner";
import { PROFILES, guessProfile, type Profile } from "../../harness/conformance/profiles";
import { progressLine, summary, toJson, toJunit } from "../../harness/conformance/report";
import { compareReports, formatComparison } from "../../harness/conformance/compare";
import type { SuiteReport } from "../../harness/conformance/types";
import { citation } from "../../contract/cite";
import { rule } from "../../contract/rules";
import { bool, str, UsageError, withArgs, type Parsed } from "../args";

function profile(name: string | undefined, shim: string): Profile {
  if (!name) return guessProfile(shim);
  const p = PROFILES[name];
  if (!p) throw new Error(`unknown profile ${JSON.stringify(name)} (have: ${Object.keys(PROFILES).join(", ")})`);
  return p;
}

export function conformanceCommand(argv: string[]): Promise<number> {
  return withArgs(["conformance"], argv, conformance);
}

async function conformance(p: Parsed): Promise<number> {
  const only = str(p, "only") === undefined ? undefined : new RegExp(str(p, "only")!);
  if (bool(p, "list")) {
    for (const c of selectChecks({ only })) {
      process.stdout.write(`${c.group}/${c.name}\n    rule: ${citation(c.rule)}\n      ${rule(c.rule).text.replace(/`/g, "")}\n`);
      if (c.also?.length) process.stdout.write(`    also: ${c.also.map(citation).join(", ")}\n`);
    }
    return 0;
  }
  const shim = str(p, "shim");
  const json = str(p, "json");
  const junit = str(p, "junit");
  const prof = { one: str(p, "profile"), a: str(p, "profile-a"), b: str(p, "profile-b") };
  // --compare takes two shims; the parser hands the second one over as the positional.
  if (p.positionals.length && str(p, "compare") === undefined) throw new UsageError(`unexpected argument ${p.positionals[0]}`, ["conformance"]);
  if (str(p, "compare") !== undefined && !p.positionals.length) throw new UsageError("--compare needs two shims", ["conformance"]);
  const compare = str(p, "compare") === undefined ? undefined : [str(p, "compare")!, p.positionals[0]];
  if (!shim && !compare) throw new UsageError("--shim or --compare is required", ["conformance"]);
  if (process.getuid?.() !== 0) process.stderr.write("shimlab conformance: not root: shims will fail to create containers\n");
  const run = async (path: string, p: Profile): Promise<SuiteReport> => {
    process.stdout.write(`conformance: ${path} with profile ${p.name} (${p.description})\n`);
    const rep = await runSuite({ shim: path, profile: p, only, onResult: (r, i, n) => process.stdout.write(progressLine(r, i, n)) });
    process.stdout.write(summary(rep));
    return rep;
  };
  if (compare) {
    const ra = await run(compare[0], profile(prof.a ?? prof.one, compare[0]));
    const rb = await run(compare[1], profile(prof.b, compare[1]));
    const c = compareReports(ra, rb);
    process.stdout.write("\n" + formatComparison(c, ra, rb));
    if (json) fs.writeFileSync(json, JSON.stringify({ a: JSON.parse(toJson(ra)), b: JSON.parse(toJson(rb)), differences: c.differences }, null, 2) + "\n");
    if (junit) fs.writeFileSync(junit, toJunit(ra) + toJunit(rb));
    return ra.counts.fail || rb.counts.fail || ra.leftovers.length || rb.leftovers.length ? 1 : 0;
  }
  const rep = await run(shim!, profile(prof.one, shim!));
  if (json) fs.writeFileSync(json, toJson(rep));
  if (junit) fs.writeFileSync(junit, toJunit(rep));
  return rep.counts.fail || rep.leftovers.length ? 1 : 0;
}
