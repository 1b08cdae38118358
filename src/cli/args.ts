// The command line's parser and help, both from the table in ./table: node:util's parseArgs does the
// parsing (strict, so an unknown option or a missing value is an error, never silently a positional),
// and the help is generated from the same entries, so a flag cannot work without being documented.
import { parseArgs } from "node:util";
import { COMMANDS, type CommandSpec, type OptionSpec } from "./table";

/** A usage error: the CLI prints it with the command's usage and exits 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly path: string[],
  ) {
    super(message);
  }
}

export interface Parsed {
  /** The options by their long name (a boolean is false when absent; a multiple option an array). */
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** The words after `--`, kept apart (a container's command). */
  rest: string[];
  help: boolean;
}

const HELP_OPTION: OptionSpec = { name: "help", short: "h", type: "boolean", help: "print this help" };

export function findCommand(path: string[]): CommandSpec {
  let list = COMMANDS;
  let found: CommandSpec | undefined;
  for (const name of path) {
    found = list.find((c) => c.name === name);
    if (!found) throw new Error(`no command ${path.join(" ")} in the table`);
    list = found.subcommands ?? [];
  }
  if (!found) throw new Error("empty command path");
  return found;
}

/** The options a (sub)command accepts: its own and, for a subcommand, those its parent takes anywhere. */
export function optionsOf(path: string[]): OptionSpec[] {
  const out: OptionSpec[] = [];
  for (let i = 1; i <= path.length; i++) {
    const c = findCommand(path.slice(0, i));
    if (i === path.length || c.globalOptions) out.push(...(c.options ?? []));
  }
  return out;
}

function toParseArgsOptions(opts: OptionSpec[]) {
  const o: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {};
  for (const x of [...opts, HELP_OPTION]) o[x.name] = { type: x.type, ...(x.short ? { short: x.short } : {}), ...(x.multiple ? { multiple: true } : {}) };
  return o;
}

/**
 * Parses argv for the command at `path` (e.g. ["trace", "render"]). Unknown options, missing values,
 * values outside an option's choices and a wrong number of positionals are UsageErrors.
 */
export function parse(path: string[], argv: string[]): Parsed {
  const spec = findCommand(path);
  const opts = optionsOf(path);
  let r;
  try {
    r = parseArgs({ args: argv, options: toParseArgsOptions(opts), strict: true, allowPositionals: true, tokens: true });
  } catch (e) {
    // parseArgs' messages name the option and say what is wrong; its advice about "--" is kept.
    throw new UsageError((e as Error).message, path);
  }
  const values = r.values as Parsed["values"];
  const help = values.help === true;
  delete values.help;
  const term = r.tokens.find((t) => t.kind === "option-terminator");
  const positionals: string[] = [];
  const rest: string[] = [];
  for (const t of r.tokens) if (t.kind === "positional") (term && t.index > term.index ? rest : positionals).push(t.value);
  for (const o of opts) {
    if (values[o.name] === undefined && o.type === "boolean") values[o.name] = false;
    if (values[o.name] === undefined && o.multiple) values[o.name] = [];
    if (values[o.name] === undefined && o.default !== undefined) values[o.name] = o.default;
    const v = values[o.name];
    if (o.choices && typeof v === "string" && !o.choices.includes(v)) throw new UsageError(`--${o.name} ${v}: want ${o.choices.join(" or ")}`, path);
  }
  if (!help) {
    // A command that takes no words after "--" must not lose them silently.
    if (rest.length && !spec.rest) throw new UsageError(`unexpected arguments after --: ${rest.join(" ")}`, path);
    const [min, max] = arity(spec);
    if (positionals.length < min || positionals.length > max)
      throw new UsageError(`want ${spec.positionals?.length ? spec.positionals.map((p) => p.name).join(" ") : "no arguments"}, got ${positionals.length ? positionals.join(" ") : "nothing"}`, path);
  }
  return { values, positionals, rest, help };
}

function arity(spec: CommandSpec): [number, number] {
  const ps = spec.positionals ?? [];
  const min = ps.filter((p) => !p.optional).length;
  return [min, ps.some((p) => p.variadic) ? Infinity : ps.length];
}

/**
 * For a command whose subcommands follow its own options (`shimlab cri --address S exec ...`):
 * the subcommand's name, the first word that is not an option or an option's value, and argv without it.
 */
export function splitSubcommand(path: string[], argv: string[]): { sub: string | undefined; argv: string[] } {
  const own = findCommand(path).options ?? [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") break;
    if (!a.startsWith("-") || a === "-") return { sub: a, argv: [...argv.slice(0, i), ...argv.slice(i + 1)] };
    const o = own.find((x) => a === `--${x.name}` || (x.short && a === `-${x.short}`));
    if (o?.type === "string") i++;
  }
  return { sub: undefined, argv };
}

function optionLabel(o: OptionSpec): string {
  const names = `${o.short ? `-${o.short}, ` : "    "}--${o.name}`;
  return o.type === "string" ? `${names} ${o.metavar ?? (o.choices ? o.choices.join("|") : "VALUE")}` : names;
}

function optionHelp(o: OptionSpec): string {
  let h = o.help;
  if (o.multiple) h += " (repeatable)";
  if (o.default !== undefined && o.type === "string") h += ` (default ${o.default})`;
  return h;
}

/** `shimlab trace render <trace> [options]`: the line a usage error ends with. */
export function usageLine(path: string[]): string {
  const spec = findCommand(path);
  const ps = (spec.positionals ?? []).map((p) => {
    const n = p.variadic ? `${p.name}...` : p.name;
    return p.optional ? `[${n}]` : n;
  });
  const hasOptions = optionsOf(path).length > 0;
  const sub = spec.subcommands?.length ? ["<" + spec.subcommands.map((s) => s.name).join("|") + ">"] : [];
  return ["shimlab", ...path, ...(hasOptions ? ["[options]"] : []), ...sub, ...ps, ...(spec.rest ? [`-- ${spec.rest}`] : [])].join(" ");
}

/** Help lines stay readable in an 80-100 column terminal: long summaries are wrapped at words. */
const WIDTH = 100;

function wrap(text: string, indent: string, first = indent): string {
  const out: string[] = [];
  let line = first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line.trim() && line.length + 1 + word.length > WIDTH) {
      out.push(line);
      line = indent + word;
    } else line += (line.trim() && !line.endsWith(" ") ? " " : "") + word;
  }
  out.push(line);
  return out.join("\n");
}

function optionLines(opts: OptionSpec[], indent: string): string[] {
  const labels = opts.map(optionLabel);
  const w = Math.min(Math.max(0, ...labels.map((l) => l.length)) + 2, 30);
  return opts.map((o, i) => {
    const l = labels[i];
    const pad = indent + " ".repeat(w);
    return l.length + 2 > w ? `${indent}${l}\n${wrap(optionHelp(o), pad)}` : wrap(optionHelp(o), pad, `${indent}${l.padEnd(w)}`);
  });
}

/** The help of a command or subcommand, generated from the table. */
export function helpText(path: string[]): string {
  const spec = findCommand(path);
  const usages = spec.usages?.map((u) => `shimlab ${path.join(" ")} ${u}`) ?? [usageLine(path)];
  const lines = [usages.map((u, i) => (i ? "       " : "usage: ") + u).join("\n"), "", wrap(spec.summary, "")];
  if (spec.description) lines.push("", spec.description());
  if (spec.positionals?.some((p) => p.help)) {
    lines.push("", "arguments:");
    for (const p of spec.positionals) if (p.help) lines.push(`  ${p.name.padEnd(20)}${p.help}`);
  }
  if (spec.options?.length) lines.push("", spec.subcommands?.length && spec.globalOptions ? "options (before or after the subcommand):" : "options:", ...optionLines(spec.options, "  "));
  // A subcommand takes its parent's options too (`cri exec --address S`): listed, so its help is whole.
  for (let i = path.length - 1; i >= 1; i--) {
    const parent = findCommand(path.slice(0, i));
    if (parent.globalOptions && parent.options?.length) lines.push("", `options of shimlab ${path.slice(0, i).join(" ")}:`, ...optionLines(parent.options, "  "));
  }
  for (const s of spec.subcommands ?? []) {
    lines.push("", `  ${usageLine([...path, s.name]).replace(/^shimlab /, "")}`, wrap(s.summary, "      "));
    if (s.options?.length) lines.push(...optionLines(s.options, "      "));
  }
  lines.push("", ...optionLines([HELP_OPTION], "  "));
  // A subcommand's help ends with its parent's notes too: they speak of every subcommand (mutants, paths).
  for (let i = path.length; i >= 1; i--) {
    const n = findCommand(path.slice(0, i)).notes;
    if (n) lines.push("", n());
  }
  return lines.join("\n").replace(/\n{3,}/g, "\n\n").trimEnd() + "\n";
}

/** The overview `shimlab --help` prints: every command of the table with its summary. */
export function overview(version: string): string {
  const rows = COMMANDS.map((c) => [c.name + (c.synopsis ? ` ${c.synopsis}` : ""), c.summary]);
  const w = Math.max(...rows.map((r) => r[0].length)) + 3;
  return [
    `shimlab ${version} — test, teach and break containerd shims`,
    "",
    "usage: shimlab <command> [options]",
    "",
    ...rows.map(([a, b]) => `  ${a.padEnd(w)}${b}`),
    `  ${"version".padEnd(w)}print the version`,
    "",
    "Run `shimlab <command> --help` (or `shimlab help <command>`) for a command's options.",
    "",
  ].join("\n");
}

/** Prints a usage error as every command does: its message, then the command's usage; status 2. */
export function usageFailure(e: UsageError): number {
  process.stderr.write(`shimlab ${e.path.join(" ")}: ${e.message}\n\n${helpText(e.path)}`);
  return 2;
}

/**
 * Runs a command body with the usual handling of its arguments: --help prints the generated help
 * (status 0), a usage error prints the message and the usage (status 2).
 */
export async function withArgs(path: string[], argv: string[], body: (p: Parsed) => Promise<number> | number): Promise<number> {
  let p: Parsed;
  try {
    p = parse(path, argv);
  } catch (e) {
    if (e instanceof UsageError) return usageFailure(e);
    throw e;
  }
  if (p.help) {
    process.stdout.write(helpText(path));
    return 0;
  }
  try {
    return await body(p);
  } catch (e) {
    if (e instanceof UsageError) return usageFailure(e);
    throw e;
  }
}

/** A string option's value (the parser has checked its type). */
export const str = (p: Parsed, name: string): string | undefined => p.values[name] as string | undefined;
export const bool = (p: Parsed, name: string): boolean => p.values[name] === true;
export const list = (p: Parsed, name: string): string[] => (p.values[name] as string[] | undefined) ?? [];

/**
 * Runs a command made of subcommands (`shimlab trace render ...`): the first word names the
 * subcommand (for a command with options of its own, the first word that is not one of them), the
 * rest is parsed for it. `--help` without a subcommand prints the command's help.
 */
export async function dispatch(path: string[], argv: string[], body: (sub: string, p: Parsed) => Promise<number> | number): Promise<number> {
  const spec = findCommand(path);
  let sub: string | undefined;
  let rest: string[];
  if (spec.globalOptions) ({ sub, argv: rest } = splitSubcommand(path, argv));
  else if (argv.length && !argv[0].startsWith("-")) [sub, ...rest] = argv;
  else rest = argv;
  if (sub === undefined) {
    const before = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
    if (before.includes("-h") || before.includes("--help")) {
      process.stdout.write(helpText(path));
      return 0;
    }
    return usageFailure(new UsageError("missing subcommand", path));
  }
  if (!spec.subcommands?.some((s) => s.name === sub)) return usageFailure(new UsageError(`unknown subcommand ${JSON.stringify(sub)}`, path));
  return withArgs([...path, sub], rest, (p) => body(sub!, p));
}
