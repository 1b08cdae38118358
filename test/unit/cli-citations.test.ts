// What the command line prints about rules: every --help text and the
// conformance check list. None may send a reader to a file outside the
// repository, every `docs/contract/<page>.md#<id>` it names must be an entry of
// the docs, and the conformance help must say where this copy's contract is.
import { describe, it, expect, afterEach, vi } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { run } from "../../src/cli/main";
import { ALL_CHECKS } from "../../src/harness/conformance/checks";
import { citation } from "../../src/contract/cite";
import { OUTSIDE } from "../helpers/outside";
import { COMMANDS } from "../../src/cli/table";

/** Every command and subcommand of the table, as the words that name it. */
function commandPaths(): string[][] {
  return COMMANDS.flatMap((c) => [[c.name], ...(c.subcommands ?? []).map((s) => [c.name, s.name])]);
}

const ROOT = path.resolve(__dirname, "..", "..");

/** Runs the CLI in-process and returns what it wrote to stdout and stderr. */
async function cli(argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const grab = (chunk: string | Uint8Array) => {
    out += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
    return true;
  };
  vi.spyOn(process.stdout, "write").mockImplementation(grab as typeof process.stdout.write);
  vi.spyOn(process.stderr, "write").mockImplementation(grab as typeof process.stderr.write);
  try {
    return { code: await run(argv), out };
  } finally {
    vi.restoreAllMocks();
  }
}

/** The citations a text makes that do not name a rule's anchor in docs/contract. */
function unresolved(text: string): string[] {
  return [...text.matchAll(/docs\/contract\/([a-z-]+)\.md#([a-z0-9.-]+)/g)]
    .filter(([, page, id]) => {
      const file = path.join(ROOT, "docs", "contract", `${page}.md`);
      return !fs.existsSync(file) || !fs.readFileSync(file, "utf8").includes(`<a id="${id}"></a>`);
    })
    .map((m) => m[0]);
}

afterEach(() => vi.restoreAllMocks());

describe("the command line's help and lists", () => {
  // Every command's and subcommand's help, from the table main.ts dispatches (cli-args.test.ts holds
  // the two together), so a new command is checked here without joining a list.
  const helps = [["--help"], ...commandPaths().map((p) => [...p, "--help"])];

  it("cover every command of the table", () => {
    expect(COMMANDS.length).toBeGreaterThan(8);
    for (const c of COMMANDS) expect(helps.map((h) => h[0]), c.name).toContain(c.name);
  });

  it("name no file outside the repository, and only rule entries the docs have", async () => {
    for (const argv of helps) {
      const { out } = await cli(argv);
      expect(out.length, argv.join(" ")).toBeGreaterThan(40);
      expect(out, argv.join(" ")).not.toMatch(OUTSIDE);
      expect(unresolved(out), argv.join(" ")).toEqual([]);
    }
  });

  it("conformance --help cites a rule and says where this copy's contract is, as paths that exist", async () => {
    const { code, out } = await cli(["conformance", "--help"]);
    expect(code).toBe(0);
    expect(out).toContain(`rule: ${citation("kill.unknown-container")}`);
    expect(out).toContain(`${path.join(ROOT, "docs", "contract")}/README.md`);
    expect(fs.existsSync(path.join(ROOT, "docs", "contract", "README.md"))).toBe(true);
    expect(out).toContain(`${path.join(ROOT, "dist", "docs", "contract")}/README.html`);
  });

  it("conformance --list prints every check with its rule's entry", async () => {
    const { code, out } = await cli(["conformance", "--list"]);
    expect(code).toBe(0);
    expect(out).not.toMatch(OUTSIDE);
    expect(unresolved(out)).toEqual([]);
    for (const c of ALL_CHECKS) expect(out).toContain(`${c.group}/${c.name}\n    rule: ${citation(c.rule)}\n`);
  });
});
