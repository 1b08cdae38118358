// The scenario file format as a small JSON-schema-like description, and a
// validator whose errors name the path inside the file and what was expected
// (the loader adds the file and line).

export type Schema =
  | { type: "string"; enum?: readonly string[]; pattern?: RegExp; patternText?: string }
  | { type: "integer"; min?: number; max?: number }
  | { type: "boolean" }
  | { type: "array"; items: Schema; minItems?: number }
  | { type: "map"; values: Schema; keyPattern?: RegExp; keyText?: string }
  | { type: "object"; properties: Record<string, Schema>; required?: readonly string[] }
  | { type: "oneOf"; alternatives: readonly Schema[]; text: string }
  /** Picks the schema from the value itself (a step's `do`, a fault's `scope`), or returns an error. */
  | { type: "switch"; pick: (v: unknown) => Schema | string };

export interface SchemaError {
  /** Path segments into the document: keys and indices. */
  path: (string | number)[];
  message: string;
  /** The error is about a key itself (an unknown one), not its value. */
  atKey?: boolean;
}

export function pathText(path: (string | number)[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s ? `.${p}` : p;
  return s || "(top level)";
}

const show = (v: unknown) => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + "..." : s;
};

const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "object" ? "a mapping" : typeof v);

export function validate(v: unknown, s: Schema, path: (string | number)[] = [], out: SchemaError[] = []): SchemaError[] {
  const err = (message: string, p = path, atKey = false) => out.push({ path: p, message, atKey });
  switch (s.type) {
    case "string":
      if (typeof v !== "string") {
        err(`expected ${s.enum ? `one of ${s.enum.join(", ")}` : "a string"}, got ${typeName(v)} ${show(v)}`);
      } else if (s.enum && !s.enum.includes(v)) err(`expected one of ${s.enum.join(", ")}, got ${show(v)}`);
      else if (s.pattern && !s.pattern.test(v)) err(`expected ${s.patternText ?? `a string matching ${s.pattern}`}, got ${show(v)}`);
      break;
    case "integer":
      if (typeof v !== "number" || !Number.isInteger(v)) err(`expected an integer, got ${typeName(v)} ${show(v)}`);
      else if (s.min !== undefined && v < s.min) err(`expected an integer >= ${s.min}, got ${v}`);
      else if (s.max !== undefined && v > s.max) err(`expected an integer <= ${s.max}, got ${v}`);
      break;
    case "boolean":
      if (typeof v !== "boolean") err(`expected true or false, got ${typeName(v)} ${show(v)}`);
      break;
    case "array":
      if (!Array.isArray(v)) {
        err(`expected a list, got ${typeName(v)} ${show(v)}`);
        break;
      }
      if (s.minItems && v.length < s.minItems) err(`expected at least ${s.minItems} item${s.minItems > 1 ? "s" : ""}, got ${v.length}`);
      v.forEach((x, i) => validate(x, s.items, [...path, i], out));
      break;
    case "map":
      if (!isObject(v)) {
        err(`expected a mapping, got ${typeName(v)} ${show(v)}`);
        break;
      }
      for (const [k, x] of Object.entries(v)) {
        if (s.keyPattern && !s.keyPattern.test(k)) err(`key ${show(k)}: expected ${s.keyText ?? `a key matching ${s.keyPattern}`}`, [...path, k], true);
        validate(x, s.values, [...path, k], out);
      }
      break;
    case "object": {
      if (!isObject(v)) {
        err(`expected a mapping, got ${typeName(v)} ${show(v)}`);
        break;
      }
      for (const r of s.required ?? []) if (!(r in v)) err(`missing required key "${r}"`);
      for (const [k, x] of Object.entries(v)) {
        const ps = s.properties[k];
        if (!ps) {
          const near = nearest(k, Object.keys(s.properties));
          err(`unknown key ${show(k)}${near ? ` (did you mean "${near}"?)` : ""}; allowed here: ${Object.keys(s.properties).join(", ")}`, [...path, k], true);
        } else validate(x, ps, [...path, k], out);
      }
      break;
    }
    case "oneOf": {
      for (const a of s.alternatives) if (validate(v, a, path).length === 0) return out;
      err(`expected ${s.text}, got ${typeName(v)} ${show(v)}`);
      break;
    }
    case "switch": {
      const picked = s.pick(v);
      if (typeof picked === "string") err(picked);
      else validate(v, picked, path, out);
      break;
    }
  }
  return out;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

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
