// Reading a task's bundle: its config.json, with errors that say what is wrong.
import fs from "node:fs";
import path from "node:path";
import { invalidArgument, notFound } from "../errdefs";
import type { OciSpec } from "../oci/spec";

/** Annotations larger than this in total are refused before they reach a VM command line or agent. */
export const MAX_ANNOTATION_BYTES = 256 << 10;

/**
 * A bundle without config.json: containerd 2.x's shim sandbox controller makes
 * one for a pod's sandbox (the pod's settings come in CreateSandbox instead).
 */
export function isSandboxBundle(bundle: string): boolean {
  return !fs.existsSync(path.join(bundle, "config.json"));
}

export function readBundleSpec(bundle: string): OciSpec {
  const file = path.join(bundle, "config.json");
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw notFound(`bundle ${bundle} has no config.json`);
    throw invalidArgument(`cannot read ${file}: ${(e as Error).message}`);
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!spec || typeof spec !== "object" || Array.isArray(spec)) throw invalidArgument(`${file} is not a JSON object`);
  const s = spec as OciSpec;
  if (s.annotations !== undefined) {
    if (typeof s.annotations !== "object" || s.annotations === null || Array.isArray(s.annotations)) {
      throw invalidArgument(`${file}: annotations must be an object of strings`);
    }
    let size = 0;
    for (const [k, v] of Object.entries(s.annotations)) {
      if (typeof v !== "string") throw invalidArgument(`${file}: annotation ${JSON.stringify(k)} is not a string`);
      size += k.length + v.length;
    }
    if (size > MAX_ANNOTATION_BYTES) throw invalidArgument(`${file}: annotations total ${size} bytes, over the ${MAX_ANNOTATION_BYTES}-byte limit`);
  }
  if (s.process !== undefined && (typeof s.process !== "object" || s.process === null)) {
    throw invalidArgument(`${file}: process must be an object`);
  }
  if (s.process?.args !== undefined && (!Array.isArray(s.process.args) || s.process.args.some((a) => typeof a !== "string"))) {
    throw invalidArgument(`${file}: process.args must be a list of strings`);
  }
  return s;
}
