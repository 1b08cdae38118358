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
import { buildCodeCache, buildCacheFile, roleCacheFile, unusualCacheFile } from "../../src/util/code-cache";

const LOADER = path.resolve(__dirname, "..", "..", "src", "util", "code-cache.ts");

let dir: string;
let bundle: string;

/** Runs bundle through runWithCodeCache in a fresh Node (via tsx), as the launchers do. */
function run(hash: string, role: string, ...args: string[]): string {
  return runBundle(bundle, hash, role, {}, ...args);
}

function runBundle(file: string, hash: string, role: string, env: NodeJS.ProcessEnv, ...args: string[]): string {
  const code = `require(${JSON.stringify(LOADER)}).runWithCodeCache(${JSON.stringify(file)}, ${JSON.stringify(hash)}, ${JSON.stringify(role)})`;
  return execFileSync(process.execPath, ["--import", "tsx", "-e", code, "--", ...args], { cwd: path.resolve(__dirname, "..", ".."), env: { ...process.env, NODE_EXTRA_CA_CERTS: "", ...env } }).toString();
}

const ADDON = path.resolve(__dirname, "..", "..", "native", "build", "shimlab.node");

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

describe("a long-lived process's bundle source", () => {
  // prints whether its own source is mapped from <bundle>.wrapped (so in shared file pages, not its heap)
  const PROG = "process.stdout.write(JSON.stringify({ out: 'ran ' + module.exports.constructor.name, mapped: require('node:fs').readFileSync('/proc/self/maps', 'utf8').includes(__filename + '.wrapped') }));";
  const withAddon = { SHIMLAB_NATIVE: ADDON };

  it("is mapped from <bundle>.wrapped for a daemon and an agent, read into the heap for a start or delete", () => {
    const b = path.join(dir, "long.js");
    fs.writeFileSync(b, PROG);
    fs.writeFileSync(buildCacheFile(b), buildCodeCache(b, { wrapped: true }));
    expect(fs.readFileSync(`${b}.wrapped`, "utf8")).toBe(Module.wrap(PROG));
    expect(JSON.parse(runBundle(b, "h", "daemon", withAddon))).toEqual({ out: "ran Object", mapped: true });
    expect(JSON.parse(runBundle(b, "h", "agent", withAddon))).toEqual({ out: "ran Object", mapped: true });
    expect(JSON.parse(runBundle(b, "h", "start", withAddon))).toEqual({ out: "ran Object", mapped: false });
    // no addon: the same program, read as before
    expect(JSON.parse(runBundle(b, "h", "daemon", { SHIMLAB_NATIVE: path.join(dir, "none.node") }))).toEqual({ out: "ran Object", mapped: false });
  });

  it("never runs a .wrapped left by another build of the bundle", () => {
    const b = path.join(dir, "stale.js");
    fs.writeFileSync(b, PROG);
    fs.writeFileSync(`${b}.wrapped`, Module.wrap("process.stdout.write(JSON.stringify({ out: 'the old build' }));"));
    expect(JSON.parse(runBundle(b, "h", "daemon", withAddon))).toEqual({ out: "ran Object", mapped: false });
    // of the same length, but older than the bundle
    const old = Module.wrap(PROG.replace("ran ", "old "));
    fs.writeFileSync(`${b}.wrapped`, old);
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(`${b}.wrapped`, past, past);
    expect(JSON.parse(runBundle(b, "h", "daemon", withAddon))).toEqual({ out: "ran Object", mapped: false });
  });

  it("maps only an ASCII file (UTF-8 reads as Latin-1 only below 0x80), and nothing that is not there", () => {
    const m = { exports: {} as { mapLatin1(p: string): string | null; mallocTrim(): boolean } };
    process.dlopen(m, ADDON);
    const ascii = path.join(dir, "ascii.txt");
    fs.writeFileSync(ascii, "plain text\n".repeat(1000));
    expect(m.exports.mapLatin1(ascii)).toBe("plain text\n".repeat(1000));
    const utf8 = path.join(dir, "utf8.txt");
    fs.writeFileSync(utf8, "caf\u00e9\n");
    expect(m.exports.mapLatin1(utf8)).toBeNull();
    expect(m.exports.mapLatin1(path.join(dir, "absent"))).toBeNull();
    fs.writeFileSync(path.join(dir, "empty"), "");
    expect(m.exports.mapLatin1(path.join(dir, "empty"))).toBeNull();
    expect(typeof m.exports.mallocTrim()).toBe("boolean");
  });
});

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

  it("keeps an unusual run's compiled code out of its role's cache until a usual run writes one", () => {
    // a run with "odd" takes a path only some runs take, as a Sandbox API daemon loads its modules (markUnusual)
    const odd = path.join(dir, "odd.js");
    fs.writeFileSync(odd, `if (process.argv.at(-1) === "odd") require(${JSON.stringify(LOADER)}).markUnusual();\nprocess.stdout.write("ran " + process.argv.at(-1));`);
    fs.writeFileSync(buildCacheFile(odd), buildCodeCache(odd));
    const usual = roleCacheFile(odd, "h5", "r");
    const unusual = unusualCacheFile(odd, "h5", "r");
    const mtime = (f: string) => fs.statSync(f).mtimeMs;

    expect(runBundle(odd, "h5", "r", {}, "odd")).toBe("ran odd");
    expect([fs.existsSync(usual), fs.existsSync(unusual)]).toEqual([false, true]);
    const unusualAt = mtime(unusual);
    runBundle(odd, "h5", "r", {}, "odd"); // the unusual cache serves an unusual run, and is not rewritten
    expect([fs.existsSync(usual), mtime(unusual)]).toEqual([false, unusualAt]);

    // A usual run that loaded it has all it held compiled too: it removes it, and writes nothing.
    expect(runBundle(odd, "h5", "r", {}, "even")).toBe("ran even");
    expect([fs.existsSync(usual), fs.existsSync(unusual)]).toEqual([false, false]);
    runBundle(odd, "h5", "r", {}, "odd"); // an unusual run again (with no cache, it writes its own)
    expect([fs.existsSync(usual), fs.existsSync(unusual)]).toEqual([false, true]);
    runBundle(odd, "h5", "r", {}, "even");
    expect(runBundle(odd, "h5", "r", {}, "even")).toBe("ran even"); // the next usual run, on the build-time cache, writes the usual one
    expect([fs.existsSync(usual), fs.existsSync(unusual)]).toEqual([true, false]);
    runBundle(odd, "h5", "r", {}, "odd");
    expect(fs.existsSync(unusual)).toBe(false); // an unusual run takes the usual cache and writes nothing
    const usualAt = mtime(usual);
    runBundle(odd, "h5", "r", {}, "even"); // which then serves every run, and is never rewritten
    expect(mtime(usual)).toBe(usualAt);
    expect(new vm.Script(Module.wrap(fs.readFileSync(odd, "utf8")), { filename: odd, cachedData: fs.readFileSync(usual) }).cachedDataRejected).toBe(false);
  });

  it("runs right on a garbage cache", () => {
    fs.writeFileSync(roleCacheFile(bundle, "h3", "delete"), Buffer.from("not a code cache at all"));
    expect(JSON.parse(run("h3", "delete", "d")).out).toBe("hello d");
    // and replaces it with a real one
    const s = new vm.Script(Module.wrap(fs.readFileSync(bundle, "utf8")), { filename: bundle, cachedData: fs.readFileSync(roleCacheFile(bundle, "h3", "delete")) });
    expect(s.cachedDataRejected).toBe(false);
  });
});
