// shimlab conformance --shim PATH [--profile NAME] [--junit FILE] [--json FILE] [--only REGEX]
// shimlab conformance --compare SHIM_A SHIM_B [--profile-a NAME] [--profile-b NAME] [--json FILE]
import fs from "node:fs";
import { runSuite, selectChecks } from "../../harness/conformance/runner";
import { PROFILES, guessProfile, type Profile } from "../../harness/conformance/profiles";
import { progressLine, summary, toJson, toJunit } from "../../harness/conformance/report";
import { compareReports, formatComparison } from "../../harness/conformance/compare";
import type { SuiteReport } from "../../harness/conformance/types";
import { citation, contractDir, contractHtmlDir } from "../../contract/cite";
import { rule } from "../../contract/rules";

// The help names where the contract is on this machine: an installed copy has no checkout around it,
// so "docs/contract/" alone would leave its reader guessing relative to what.
const help = () => `usage: shimlab conformance --shim PATH [--profile runc|shimlab] [--junit FILE] [--json FILE] [--only REGEX]
       shimlab conformance --compare SHIM_A SHIM_B [--profile-a NAME] [--profile-b NAME] [--json FILE] [--only REGEX]
       shimlab conformance --list

Plays containerd against any shim v2 binary (no containerd runs) and checks the
binary contract, the Task API and the event rules. Each check cites its rule by
id and entry in shimlab's shim v2 contract, e.g.
  rule: ${citation("kill.unknown-container")}
The path is relative to shimlab's directory; here the contract is
  ${contractDir()}/README.md
and its HTML form (built by npm run build)
  ${contractHtmlDir()}/README.html
--list prints every check with its rules. Profiles state where a shim differs from runc's
on purpose (pids, Checkpoint, error codes); the default is guessed from the
binary's name. Needs root, runc and busybox-static. Exit status 0 only when no
check failed and no process outlived the clean-up (with --compare: for both shims).
`;

function profile(name: string | undefined, shim: string): Profile {
  if (!name) return guessProfile(shim);
  const p = PROFILES[name];
  if (!p) throw new Error(`unknown profile ${JSON.stringify(name)} (have: ${Object.keys(PROFILES).join(", ")})`);
  return p;
}

export async function conformanceCommand(argv: string[]): Promise<number> {
  let shim: string | undefined;
  let compare: [string, string] | undefined;
  let junit: string | undefined;
  let json: string | undefined;
  let only: RegExp | undefined;
  const prof: { one?: string; a?: string; b?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--shim") shim = val();
    else if (a === "--compare") compare = [val(), val()];
    else if (a === "--junit") junit = val();
    else if (a === "--json") json = val();
    else if (a === "--profile") prof.one = val();
    else if (a === "--profile-a") prof.a = val();
    else if (a === "--profile-b") prof.b = val();
    else if (a === "--only") only = new RegExp(val());
    else if (a === "--list") {
      for (const c of selectChecks({ only })) {
        process.stdout.write(`${c.group}/${c.name}\n    rule: ${citation(c.rule)}\n      ${rule(c.rule).text.replace(/`/g, "")}\n`);
        if (c.also?.length) process.stdout.write(`    also: ${c.also.map(citation).join(", ")}\n`);
      }
      return 0;
    } else if (a === "-h" || a === "--help") {
      process.stdout.write(help());
      return 0;
    } else {
      process.stderr.write(`shimlab conformance: unknown argument ${a}\n\n${help()}`);
      return 2;
    }
  }
  if (!shim && !compare) {
    process.stderr.write(`shimlab conformance: --shim or --compare is required\n\n${help()}`);
    return 2;
  }
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
