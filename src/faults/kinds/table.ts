// The fault table of scenarios/README.md, made from the registry: each kind's
// keys (from its schema, with their allowed values and descriptions), what it
// does, what carries it, whether it is timed and which drivers apply it.
import { z } from "zod";
import { FAULT_KINDS } from "./index";
import { scopeOf, type FaultKind } from "./kind";

const COMMON_KEYS = new Set(["name", "scope", "window"]);

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
// Only `<` could open an HTML tag in a table cell.
const html = (s: string) => s.replace(/</g, "&lt;");

function describeKey(key: string, s: z.ZodType): string {
  let inner = s;
  while (inner instanceof z.ZodOptional) inner = inner.unwrap() as z.ZodType;
  const desc = z.globalRegistry.get(s)?.description ?? z.globalRegistry.get(inner)?.description;
  const values = inner instanceof z.ZodEnum ? ` ${(inner.options as string[]).join("|")}` : "";
  const notes = [desc && !values ? html(desc) : "", s instanceof z.ZodOptional ? "" : "required"].filter(Boolean);
  return `\`${key}\`${values}${notes.length ? ` (${notes.join("; ")})` : ""}`;
}

export function faultTable(): string {
  const rows = FAULT_KINDS.map((k0) => {
    const k = k0 as FaultKind;
    const keys = Object.entries(k.schema.shape as Record<string, z.ZodType>)
      .filter(([key]) => !COMMON_KEYS.has(key))
      .map(([key, s]) => describeKey(key, s))
      .join(", ");
    return `| \`${scopeOf(k)}\` | ${cell(keys)} | ${cell(k.doc)} | ${cell(k.carrier)} | ${k.timed ? "yes" : "no"} | ${k.emulatorOnly ? "emulator" : "both"} |`;
  });
  return ["| scope | keys | what it does | carried by | timed? | drivers |", "|---|---|---|---|---|---|", ...rows].join("\n");
}

const BLOCK = /<!-- scenario:faults -->[\s\S]*?<!-- \/scenario:faults -->/;

/** The page with its fault table block filled from the registry. */
export function regenerateFaultTable(page: string): string {
  if (!BLOCK.test(page)) throw new Error("no <!-- scenario:faults --> block");
  return page.replace(BLOCK, () => `<!-- scenario:faults -->\n${faultTable()}\n<!-- /scenario:faults -->`);
}
