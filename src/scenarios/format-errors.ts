// How a scenario file's schema errors read: zod's issues become "path: what was
// expected, got what" (the loader puts file:line:col in front). zod names
// types and lists; these name what a scenario author wrote, suggest the near
// key for a typo, and put each problem where the author will look: a missing
// key at its mapping, an unknown key at the key itself, a wrong `do` or
// `scope` at its step or fault.
import type { z } from "zod";

type Path = (string | number)[];

export interface SchemaError {
  /** Path segments into the document: keys and indices. */
  path: Path;
  message: string;
  /** The error is about a key itself (an unknown one), not its value. */
  atKey?: boolean;
}

export function pathText(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s || "(top level)";
}

export const show = (v: unknown) => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + "..." : s;
};

const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "object" ? "a mapping" : typeof v);

const EXPECTED: Record<string, string> = { string: "a string", number: "an integer", int: "an integer", boolean: "true or false", array: "a list", object: "a mapping", record: "a mapping" };

/** A close key name, for typos (edit distance ≤ 2). */
export function nearest(k: string, keys: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const c of keys) {
    const d = distance(k, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best;
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return dp[a.length][b.length];
}

type Raw = z.core.$ZodRawIssue & { inst?: { _zod: { def: Record<string, any> } } };

/**
 * The parse's error map: a message for every issue a schema did not word
 * itself. Unknown keys carry what is allowed (as JSON, split per key below),
 * which only the raw issue's schema knows.
 */
export function errorMap(iss: Raw): string | undefined {
  const v = iss.input;
  switch (iss.code) {
    case "invalid_type":
      if (v === undefined) return `missing required key "${String(iss.path?.[iss.path.length - 1] ?? "")}"`;
      return `expected ${EXPECTED[iss.expected] ?? iss.expected}, got ${typeName(v)} ${show(v)}`;
    case "invalid_value":
      return `expected one of ${iss.values.map(String).join(", ")}, got ${show(v)}`;
    case "too_small":
      if (iss.origin === "array") return `expected at least ${iss.minimum} item${Number(iss.minimum) > 1 ? "s" : ""}, got ${(v as unknown[]).length}`;
      return `expected an integer >= ${iss.minimum}, got ${show(v)}`;
    case "too_big":
      return `expected an integer <= ${iss.maximum}, got ${show(v)}`;
    case "invalid_format":
      return iss.pattern ? `a string matching ${iss.pattern}` : `a ${iss.format}`;
    case "unrecognized_keys": {
      const def = iss.inst?._zod.def;
      if (def?.type === "record") return JSON.stringify({ keyText: def.keyType?.meta?.()?.description ?? "a known key" });
      return JSON.stringify({ allowed: Object.keys(def?.shape ?? {}) });
    }
    case "invalid_union":
      if ("discriminator" in iss && iss.discriminator) {
        const options = ((iss as { options?: unknown[] }).options ?? []).filter((o) => o !== undefined).map(String);
        return `${iss.discriminator}: expected one of ${options.join(", ")}, got ${show((v as Record<string, unknown> | undefined)?.[iss.discriminator as string])}`;
      }
      return "one of several forms";
  }
  return undefined;
}

/**
 * Problems from zod's issues (parsed with errorMap and reportInput). `dominant`
 * is a message that makes the other key problems of its mapping noise (a step
 * with neither `do` nor `parallel` has no allowed keys to speak of).
 */
export function problemsOf(issues: readonly z.core.$ZodIssue[], dominant?: string): SchemaError[] {
  const out: SchemaError[] = [];
  const parentOf = (p: readonly PropertyKey[]) => p.slice(0, -1) as Path;
  const quiet = new Set(issues.filter((i) => i.message === dominant).map((i) => pathText(parentOf(i.path))));
  for (const i of issues) {
    const path = i.path as Path;
    const input = (i as { input?: unknown }).input;
    switch (i.code) {
      case "invalid_type":
        out.push(input === undefined ? { path: parentOf(path), message: i.message } : { path, message: i.message });
        break;
      case "invalid_union":
        if ("discriminator" in i && i.discriminator) out.push({ path: parentOf(path), message: i.message });
        else out.push({ path, message: `expected ${i.message}, got ${typeName(input)} ${show(input)}` });
        break;
      case "invalid_format":
        out.push({ path, message: `expected ${i.message}, got ${show(input)}` });
        break;
      case "invalid_key": {
        const inner = i.issues[0]?.message ?? "a known key";
        out.push({ path, message: `key ${show(path[path.length - 1])}: expected ${inner}`, atKey: true });
        break;
      }
      case "unrecognized_keys": {
        if (quiet.has(pathText(path))) break;
        const what = JSON.parse(i.message) as { allowed?: string[]; keyText?: string };
        for (const k of i.keys) {
          if (what.keyText) out.push({ path: [...path, k], message: `key ${show(k)}: expected ${what.keyText}`, atKey: true });
          else {
            const allowed = what.allowed ?? [];
            const near = nearest(k, allowed);
            out.push({ path: [...path, k], message: `unknown key ${show(k)}${near ? ` (did you mean "${near}"?)` : ""}; allowed here: ${allowed.join(", ")}`, atKey: true });
          }
        }
        break;
      }
      default:
        out.push({ path, message: i.message });
    }
  }
  return out;
}
