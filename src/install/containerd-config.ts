// Adding shimlab's runtime to containerd's config.toml, and taking it out.
//
// A parse-and-reserialise round trip would drop every comment and reorder the
// file, so the edit is textual: shimlab's tables go in one marked block at the
// end (or replace that block where it already is), and nothing else is
// touched. A TOML parser then checks the result: the edited document must
// parse, hold exactly the runtime we meant, and equal the original everywhere
// else. If it does not, the file is left alone and the error says why.
import { parse } from "smol-toml";
import { isDeepStrictEqual } from "node:util";

export const BEGIN = "# BEGIN shimlab runtime (added by `shimlab install`; `shimlab uninstall` removes it)";
export const END = "# END shimlab runtime";

/** Where CRI reads its runtimes, by config version (containerd 1.6/1.7: 2; 2.x: 3). */
export const CRI_PLUGIN: Record<number, string> = {
  2: "io.containerd.grpc.v1.cri",
  3: "io.containerd.cri.v1.runtime",
};

export interface RuntimeEntry {
  /** The CRI runtime handler name (Kubernetes RuntimeClass `handler`). */
  name: string;
  runtimeType: string;
  /** Absolute path of the shim binary; CRI uses it instead of a PATH lookup. */
  runtimePath?: string;
  /**
   * shimlab's own TOML config, passed to the shim as runtimeoptions.v1.Options.ConfigPath. Absent: no
   * options table (a shim-sandboxer runtime on containerd 2.1 cannot have one, see install.ts).
   */
  configPath?: string;
  /** Pod annotations CRI passes through to the shim. */
  podAnnotations?: string[];
  /** containerd 2.x (config version 3): who makes the pod, CRI's pause container or the shim's Sandbox API. */
  sandboxer?: Sandboxer;
}

export type Sandboxer = "podsandbox" | "shim";
export const SANDBOXERS: readonly Sandboxer[] = ["podsandbox", "shim"];

export class ConfigEditError extends Error {}

type Table = Record<string, unknown>;

function parseToml(text: string, what: string): Table {
  try {
    return plain(parse(text)) as Table;
  } catch (e) {
    throw new ConfigEditError(`${what} is not valid TOML: ${(e as Error).message.split("\n")[0]}`);
  }
}

/** Ordinary objects (the parser makes prototype-less ones), so that deep equality compares values only. */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Date) return { $date: String(v) };
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** The config's version: containerd reads a missing `version` as 1. */
export function configVersion(doc: Table): number {
  const v = doc.version;
  if (v === undefined) return 1;
  if (typeof v !== "number" && typeof v !== "bigint") throw new ConfigEditError(`version = ${JSON.stringify(v)} is not a number`);
  return Number(v);
}

export function runtimeKeyPath(version: number, name: string): string[] {
  const plugin = CRI_PLUGIN[version];
  if (!plugin) {
    throw new ConfigEditError(
      version === 1
        ? "containerd config version 1 (no `version` key) is not supported: run `containerd config migrate` (2.x) or add `version = 2` (1.6/1.7) first"
        : `containerd config version ${version} is not supported (want 2 for containerd 1.6/1.7, 3 for 2.x)`,
    );
  }
  return ["plugins", plugin, "containerd", "runtimes", name];
}

/** `sandboxer` is a containerd 2.x key: 1.6/1.7 (version 2) would ignore it and make pause containers anyway. */
function checkSandboxer(version: number, e: RuntimeEntry): void {
  if (e.sandboxer === undefined) return;
  if (!SANDBOXERS.includes(e.sandboxer)) throw new ConfigEditError(`sandboxer ${JSON.stringify(e.sandboxer)}: want ${SANDBOXERS.join(" or ")}`);
  if (version !== 3) throw new ConfigEditError(`sandboxer = "${e.sandboxer}" is a containerd 2.x setting (config version 3); this config is version ${version}`);
}

function header(keys: string[]): string {
  return keys.map((k) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k))).join(".");
}

const str = (s: string) => JSON.stringify(s);

/** The tables shimlab adds, as TOML text inside the markers. */
export function runtimeBlock(version: number, e: RuntimeEntry, restoreRunc = false): string {
  const keys = runtimeKeyPath(version, e.name);
  const lines = [BEGIN];
  if (restoreRunc) {
    // containerd 1.6 replaces its built-in runtimes (runc) once the config names any runtime,
    // and CRI then fails: "no corresponding runtime configured ... default_runtime_name = runc".
    lines.push("# containerd's default handler, which naming any runtime here would otherwise drop", `[${header([...keys.slice(0, -1), "runc"])}]`, `  runtime_type = ${str(RUNC_TYPE)}`);
  }
  lines.push(`[${header(keys)}]`, `  runtime_type = ${str(e.runtimeType)}`);
  if (e.runtimePath) lines.push(`  runtime_path = ${str(e.runtimePath)}`);
  if (e.sandboxer) lines.push(`  sandboxer = ${str(e.sandboxer)}`);
  if (e.podAnnotations?.length) lines.push(`  pod_annotations = [${e.podAnnotations.map(str).join(", ")}]`);
  // CRI decodes `options` of a non-runc runtime into runtimeoptions.v1.Options.
  if (e.configPath) lines.push(`  [${header([...keys, "options"])}]`, `    ConfigPath = ${str(e.configPath)}`);
  lines.push(END);
  return lines.join("\n") + "\n";
}

const RUNC_TYPE = "io.containerd.runc.v2";

/** Config version 2 with no runtimes at all, and runc as the default: 1.6 would lose runc when we add ours. */
function needsRunc(doc: Table, version: number, keys: string[]): boolean {
  if (version !== 2) return false;
  const containerd = getPath(doc, keys.slice(0, -2)) as Table | undefined;
  const def = (containerd?.default_runtime_name as string | undefined) ?? "runc";
  const runtimes = containerd?.runtimes as Table | undefined;
  return def === "runc" && !(runtimes && Object.keys(runtimes).length);
}

/** What the runtime's table must parse to. */
function expectedTable(e: RuntimeEntry): Table {
  const t: Table = { runtime_type: e.runtimeType };
  if (e.runtimePath) t.runtime_path = e.runtimePath;
  if (e.sandboxer) t.sandboxer = e.sandboxer;
  if (e.podAnnotations?.length) t.pod_annotations = e.podAnnotations;
  if (e.configPath) t.options = { ConfigPath: e.configPath };
  return t;
}

function getPath(doc: Table, keys: string[]): unknown {
  let cur: unknown = doc;
  for (const k of keys) {
    if (!cur || typeof cur !== "object" || Array.isArray(cur)) return undefined;
    cur = (cur as Table)[k];
  }
  return cur;
}

/** A deep copy of doc without the table at keys (and without parents that only held it). */
function withoutPath(doc: Table, keys: string[]): Table {
  const copy = structuredClone(doc);
  const chain: Table[] = [copy];
  for (const k of keys.slice(0, -1)) {
    const next = chain[chain.length - 1][k];
    if (!next || typeof next !== "object" || Array.isArray(next)) return copy;
    chain.push(next as Table);
  }
  delete chain[chain.length - 1][keys[keys.length - 1]];
  // Parents the block created implicitly leave empty tables behind; they mean nothing to containerd.
  for (let i = chain.length - 1; i > 0; i--) {
    if (Object.keys(chain[i]).length) break;
    delete chain[i - 1][keys[i - 1]];
  }
  return copy;
}

interface Block {
  start: number;
  end: number;
}

/** The marked block, including the blank line install puts before it. */
function findBlock(text: string): Block | null {
  const b = text.indexOf(BEGIN);
  if (b < 0) return null;
  const e = text.indexOf(END, b);
  if (e < 0) throw new ConfigEditError(`found "${BEGIN}" without "${END}": fix the file by hand`);
  let start = b;
  if (start > 0 && text[start - 1] === "\n") start -= 1;
  let end = e + END.length;
  if (text[end] === "\n") end += 1;
  if (text.indexOf(BEGIN, end) >= 0) throw new ConfigEditError("the file holds more than one shimlab block: fix it by hand");
  return { start, end };
}

export interface EditResult {
  text: string;
  changed: boolean;
  version: number;
}

/**
 * Adds (or updates) shimlab's runtime. An empty file becomes a minimal config
 * of `emptyVersion`. Throws ConfigEditError, leaving nothing changed, when the
 * result would not be exactly "the same config plus shimlab".
 */
export function addRuntime(text: string, e: RuntimeEntry, emptyVersion = 2): EditResult {
  let base = text;
  if (!base.trim()) base = `version = ${emptyVersion}\n`;
  const block = findBlock(base);
  const without = block ? base.slice(0, block.start) + base.slice(block.end) : base;
  const before = parseToml(without, "containerd's config");
  const version = configVersion(before);
  const keys = runtimeKeyPath(version, e.name);
  checkSandboxer(version, e);
  if (getPath(before, keys) !== undefined) {
    const same = isDeepStrictEqual(getPath(before, keys), expectedTable(e));
    if (same && !block) return { text, changed: false, version };
    throw new ConfigEditError(`containerd's config already defines a runtime ${JSON.stringify(e.name)} outside shimlab's block; remove it, or install under another --runtime-name`);
  }
  let out: string;
  const restoreRunc = needsRunc(before, version, keys);
  const add = runtimeBlock(version, e, restoreRunc);
  if (block) {
    // Replace in place: the rest of the file keeps its order.
    out = base.slice(0, block.start) + "\n" + add + base.slice(block.end);
  } else {
    out = without + (without.endsWith("\n") || without === "" ? "" : "\n") + "\n" + add;
  }
  verify(before, out, keys, e, restoreRunc);
  return { text: out, changed: out !== text, version };
}

function verify(before: Table, out: string, keys: string[], e: RuntimeEntry, restoreRunc: boolean): void {
  let after: Table;
  try {
    after = parseToml(out, "the edited config");
  } catch (err) {
    throw new ConfigEditError(
      `adding shimlab's tables would make the config invalid (${(err as Error).message}); this happens when ${header(keys.slice(0, -1))} is written as an inline table or with dotted keys. Add the runtime by hand:\n${runtimeBlock(configVersion(before), e)}`,
    );
  }
  if (!isDeepStrictEqual(getPath(after, keys), expectedTable(e))) throw new ConfigEditError("the edited config does not hold shimlab's runtime as intended; file left unchanged");
  const runcKeys = [...keys.slice(0, -1), "runc"];
  if (restoreRunc && !isDeepStrictEqual(getPath(after, runcKeys), { runtime_type: RUNC_TYPE })) throw new ConfigEditError("the edited config does not hold the runc runtime as intended; file left unchanged");
  const strip = (d: Table) => (restoreRunc ? withoutPath(withoutPath(d, keys), runcKeys) : withoutPath(d, keys));
  if (!isDeepStrictEqual(strip(after), strip(before))) throw new ConfigEditError("the edit would change keys other than shimlab's runtime; file left unchanged");
}

/** Removes shimlab's block; a file without one is returned unchanged. */
export function removeRuntime(text: string): EditResult {
  const block = findBlock(text);
  const doc = parseToml(text, "containerd's config");
  const version = configVersion(doc);
  if (!block) return { text, changed: false, version };
  const out = text.slice(0, block.start) + text.slice(block.end);
  const after = parseToml(out, "the config without shimlab's block");
  // Whatever the block declared is gone; everything else stays.
  if (CRI_PLUGIN[version]) {
    const strip = (d: Table) => blockRuntimeNames(text.slice(block.start, block.end)).reduce((acc, n) => withoutPath(acc, runtimeKeyPath(version, n)), d);
    if (!isDeepStrictEqual(strip(after), strip(doc))) throw new ConfigEditError("removing shimlab's block would change other keys; file left unchanged");
  }
  return { text: out, changed: true, version };
}

function blockRuntimeNames(block: string): string[] {
  const names = new Set<string>();
  for (const m of block.matchAll(/\.runtimes\.("(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+)\]/g)) names.add(m[1].startsWith('"') ? (JSON.parse(m[1]) as string) : m[1]);
  return [...names];
}
