// The code-cache loader: a program runs the same with or without a cache, its
// first run in a role leaves a cache that later runs accept, and a cache never
// serves another build of the file.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import vm from "node:vm";
import Module from "node:module";
import { execFileSync } from "node:child_process";
import { buildCodeCache, buildCacheFile, roleCacheFile } from "../../src/util/code-cache";

const LOADER = path.resolve(__dirname, "..", "..", "src", "util", "code-cache.ts");

let dir: string;
let bundle: string;

/** Runs bundle through runWithCodeCache in a fresh Node (via tsx), as the launchers do. */
function run(hash: string, role: string, ...args: string[]): string {
  const code = `require(${JSON.stringify(LOADER)}).runWithCodeCache(${JSON.stringify(bundle)}, ${JSON.stringify(hash)}, ${JSON.stringify(role)})`;
  return execFileSync(process.execPath, ["--import", "tsx", "-e", code, "--", ...args], { cwd: path.resolve(__dirname, "..", ".."), env: { ...process.env, NODE_EXTRA_CA_CERTS: "" } }).toString();
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-codecache-"));
  bundle = path.join(dir, "prog.js");
  fs.writeFileSync(
    bundle,
    [
      "const path = require('node:path');",
      "function greet(n) { return 'hello ' + n; }",
      "module.exports.x = 1;",
      "process.stdout.write(JSON.stringify({ out: greet(process.argv.at(-1)), file: path.basename(__filename), dir: __dirname === path.dirname(__filename), exp: module.exports.x }));",
    ].join("\n"),
  );
  fs.writeFileSync(buildCacheFile(bundle), buildCodeCache(bundle));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("runWithCodeCache", () => {
  it("runs the file as a CommonJS module with its own require, module, __filename and __dirname", () => {
    expect(JSON.parse(run("h1", "", "you"))).toEqual({ out: "hello you", file: "prog.js", dir: true, exp: 1 });
  });

  it("writes a cache for a role on its first run, which the next run accepts", () => {
    const f = roleCacheFile(bundle, "h1", "start");
    expect(fs.existsSync(f)).toBe(false);
    expect(JSON.parse(run("h1", "start", "a")).out).toBe("hello a");
    expect(fs.existsSync(f)).toBe(true);
    const data = fs.readFileSync(f);
    const s = new vm.Script(Module.wrap(fs.readFileSync(bundle, "utf8")), { filename: bundle, cachedData: data });
    expect(s.cachedDataRejected).toBe(false);
    const mtime = fs.statSync(f).mtimeMs;
    expect(JSON.parse(run("h1", "start", "b")).out).toBe("hello b");
    expect(fs.statSync(f).mtimeMs).toBe(mtime); // a warm cache is not rewritten
  });

  it("never writes a cache without a role, and keys caches by the build's hash", () => {
    run("h1", "", "z");
    expect(fs.readdirSync(dir).filter((f) => f.includes(".h1..cache"))).toEqual([]);
    run("h2", "start", "c");
    expect(fs.existsSync(roleCacheFile(bundle, "h2", "start"))).toBe(true);
  });

  it("runs right on a garbage cache", () => {
    fs.writeFileSync(roleCacheFile(bundle, "h3", "delete"), Buffer.from("not a code cache at all"));
    expect(JSON.parse(run("h3", "delete", "d")).out).toBe("hello d");
    // and replaces it with a real one
    const s = new vm.Script(Module.wrap(fs.readFileSync(bundle, "utf8")), { filename: bundle, cachedData: fs.readFileSync(roleCacheFile(bundle, "h3", "delete")) });
    expect(s.cachedDataRejected).toBe(false);
  });
});
