// The command line's table against its parser, its help and main.ts: every option the table
// declares is accepted and documented, an unknown one is a usage error (status 2, with the
// command's usage), and main.ts dispatches exactly the table's commands.
import { describe, it, expect, afterEach, vi } from "vitest";
import { COMMANDS, type CommandSpec, type OptionSpec } from "../../src/cli/table";
import { helpText, optionsOf, parse, UsageError } from "../../src/cli/args";
import { LOADERS, run } from "../../src/cli/main";
import { TRACE_FILE } from "../../src/sniff/daemon";

/** Runs the CLI in-process; what it wrote to stdout and to stderr. */
async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const text = (c: string | Uint8Array) => (typeof c === "string" ? c : Buffer.from(c).toString());
  vi.spyOn(process.stdout, "write").mockImplementation(((c: string | Uint8Array) => ((out += text(c)), true)) as typeof process.stdout.write);
  vi.spyOn(process.stderr, "write").mockImplementation(((c: string | Uint8Array) => ((err += text(c)), true)) as typeof process.stderr.write);
  try {
    return { code: await run(argv), out, err };
  } finally {
    vi.restoreAllMocks();
  }
}

afterEach(() => vi.restoreAllMocks());

/** Leaf commands (those that parse options): a command without subcommands, or each subcommand. */
const leaves: { path: string[]; spec: CommandSpec }[] = COMMANDS.flatMap((c) => (c.subcommands?.length ? c.subcommands.map((s) => ({ path: [c.name, s.name], spec: s })) : [{ path: [c.name], spec: c }]));

/** Enough positionals (and a command after --) for the command's arity. */
function positionals(spec: CommandSpec): string[] {
  const ps = spec.positionals ?? [];
  return [...ps.filter((p) => !p.optional).map((p, i) => `arg${i}`), ...(ps.some((p) => p.variadic && !p.optional) ? ["extra"] : []), ...(spec.rest ? ["--", "true"] : [])];
}

function sample(o: OptionSpec): string[] {
  if (o.type === "boolean") return [`--${o.name}`];
  return [`--${o.name}`, o.choices?.[0] ?? "v"];
}

describe("the CLI's table", () => {
  it("gives every command and subcommand a summary and a help that lists its options", () => {
    for (const c of COMMANDS) expect(c.summary.length, c.name).toBeGreaterThan(5);
    for (const { path, spec } of leaves) {
      expect(spec.summary.length, path.join(" ")).toBeGreaterThan(5);
      const help = helpText(path);
      expect(help, path.join(" ")).toMatch(new RegExp(`^usage: shimlab ${path.join(" ")}`));
      for (const o of optionsOf(path)) {
        expect(help, `${path.join(" ")} --${o.name}`).toContain(`--${o.name}`);
        if (o.short) expect(help, `${path.join(" ")} -${o.short}`).toContain(`-${o.short}, --${o.name}`);
      }
    }
    // A parent's help lists its subcommands' options as well.
    for (const c of COMMANDS.filter((c) => c.subcommands?.length)) for (const s of c.subcommands!) for (const o of s.options ?? []) expect(helpText([c.name]), `${c.name} ${s.name} --${o.name}`).toContain(`--${o.name}`);
  });

  it("accepts every option it declares, long and short, and hands over its value", () => {
    for (const { path, spec } of leaves) {
      for (const o of optionsOf(path)) {
        const p = parse(path, [...sample(o), ...positionals(spec)]);
        const want = o.type === "boolean" ? true : o.choices?.[0] ?? "v";
        expect(p.values[o.name], `${path.join(" ")} --${o.name}`).toEqual(o.multiple ? [want] : want);
        if (o.short) {
          const s = parse(path, [`-${o.short}`, ...(o.type === "string" ? [String(want)] : []), ...positionals(spec)]);
          expect(s.values[o.name], `${path.join(" ")} -${o.short}`).toEqual(o.multiple ? [want] : want);
        }
        if (o.type === "string") expect(parse(path, [`--${o.name}=${want}`, ...positionals(spec)]).values[o.name]).toEqual(o.multiple ? [want] : want);
      }
    }
  });

  it("makes a missing value, a value outside the choices and a wrong number of arguments usage errors", () => {
    expect(() => parse(["trace", "render"], ["t.jsonl", "-o"])).toThrow(UsageError);
    expect(() => parse(["trace", "render"], ["t.jsonl", "-o", "x", "--format", "pdf"])).toThrow(/want html or mermaid/);
    expect(() => parse(["trace", "render"], ["a", "b", "-o", "x"])).toThrow(/want TRACE/);
    expect(() => parse(["cri", "inspect"], [])).toThrow(/want CTR/);
    expect(() => parse(["cri", "rm"], ["c", "--", "x"])).toThrow(/after --/);
    const p = parse(["cri", "exec"], ["-it", "c1", "--", "sh", "-c", "echo --help"]);
    expect(p).toMatchObject({ positionals: ["c1"], rest: ["sh", "-c", "echo --help"], help: false, values: { stdin: true, tty: true } });
  });

  it("answers an unknown option of every command with status 2, the message and the command's usage", async () => {
    for (const { path, spec } of leaves) {
      const r = await cli([...path, "--no-such-option", ...positionals(spec)]);
      expect(r.code, path.join(" ")).toBe(2);
      expect(r.out, path.join(" ")).toBe("");
      expect(r.err, path.join(" ")).toContain(`shimlab ${path.join(" ")}: Unknown option '--no-such-option'`);
      expect(r.err, path.join(" ")).toContain(`usage: shimlab ${path.join(" ")}`);
    }
  });

  it("prints the generated help for --help, -h and `help <command>`, with status 0", async () => {
    for (const c of COMMANDS) {
      const want = helpText([c.name]);
      for (const argv of [[c.name, "--help"], [c.name, "-h"], ["help", c.name]]) {
        const r = await cli(argv);
        expect(r, argv.join(" ")).toEqual({ code: 0, out: want, err: "" });
      }
    }
    const sub = await cli(["cri", "--address", "/x.sock", "exec", "--help"]);
    expect(sub).toEqual({ code: 0, out: helpText(["cri", "exec"]), err: "" });
    expect((await cli(["help", "no-such"])).code).toBe(2);
  });

  it("is what main.ts dispatches and what the overview lists", async () => {
    expect(Object.keys(LOADERS).sort()).toEqual(COMMANDS.map((c) => c.name).sort());
    const r = await cli(["--help"]);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.out).toMatch(new RegExp(`^  ${c.name}\\b.*${c.summary.slice(0, 20).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "m"));
    expect((await cli([])).code).toBe(2);
    expect((await cli(["no-such-command"])).code).toBe(2);
  });

  it("names the sniff trace file the proxy writes", () => {
    expect(helpText(["sniff"])).toContain(`DIR/${TRACE_FILE} -o page.html`);
  });

  it("loads each command's module only when it runs: main.ts imports none of them", () => {
    const fs = require("node:fs") as typeof import("node:fs");
    const src = fs.readFileSync(require.resolve("../../src/cli/main.ts"), "utf8");
    expect(src).not.toMatch(/^import .*\.\/commands\//m);
    for (const name of Object.keys(LOADERS)) expect(src).toMatch(new RegExp(`await import\\("\\./commands/`));
  });
});
