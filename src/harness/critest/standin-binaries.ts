// The stand-ins' own programs (standins/*.c: pause, nginx, nonewprivs),
// compiled with `gcc -static` so that they run in any image, with or without
// libc, and cached by their sources and the compiler's version.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { cached, peersCacheDir } from "../peers/cache";
import { which } from "../../util/which";

const run = promisify(execFile);
export const STANDIN_SOURCES = path.resolve(__dirname, "..", "..", "..", "src", "harness", "critest", "standins");
export const STANDIN_PROGRAMS = ["pause", "nginx", "nonewprivs"] as const;
export type StandinProgram = (typeof STANDIN_PROGRAMS)[number];

export async function standinBinaries(): Promise<Record<StandinProgram, string>> {
  const gcc = which("gcc");
  if (!gcc) throw new Error("gcc is needed for critest's stand-in images: apt-get install gcc libc6-dev");
  const h = crypto.createHash("sha256");
  h.update(execFileSync(gcc, ["--version"], { encoding: "utf8" }).split("\n")[0]);
  for (const p of STANDIN_PROGRAMS) h.update(`\0${p}\0`).update(fs.readFileSync(path.join(STANDIN_SOURCES, `${p}.c`)));
  const dir = await cached(path.join(peersCacheDir(), "critest-standins", h.digest("hex").slice(0, 16)), async (tmp) => {
    for (const p of STANDIN_PROGRAMS) {
      await run(gcc, ["-static", "-O2", "-Wall", "-o", path.join(tmp, p), path.join(STANDIN_SOURCES, `${p}.c`)]).catch((e) => {
        throw new Error(`gcc -static ${p}.c failed (static libc: apt-get install libc6-dev): ${e.stderr || e.message}`);
      });
    }
  });
  return Object.fromEntries(STANDIN_PROGRAMS.map((p) => [p, path.join(dir, p)])) as Record<StandinProgram, string>;
}
