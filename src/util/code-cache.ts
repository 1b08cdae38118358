// Loads a one-file program (dist/bundle/, scripts/bundle.mjs) through V8's
// code cache: vm.Script with cachedData skips parsing and compiling whatever
// the cache holds, which is most of what a short-lived Node process spends
// beyond its own bootstrap.
//
// Two caches per program:
//  - <bundle>.cache, written at build time: the top-level code only (V8
//    compiles functions lazily, on first call, and caches what it compiled);
//  - <bundle>.<hash>.<role>.cache, written once by the program itself as it
//    exits, when it ran without one: everything that run compiled, i.e. the
//    whole path of a `start`, a daemon's lifecycle, a `delete`. Later runs in
//    that role load it and compile next to nothing. A run that took a path
//    only some runs of its role take (markUnusual) writes
//    <bundle>.<hash>.<role>.unusual.cache instead. A usual run that loaded
//    it removes it, and the next usual run writes the usual one: a cache's
//    every function is deserialised into the heap of every run that loads
//    it, so a daemon whose cache a Sandbox API daemon had written held
//    ~0.7 MB more at idle.
// <hash> is the bundle's content hash (fixed at build time): V8 itself only
// checks a cache against the source's length, its own version and its flags,
// so a cache must never outlive its bundle; the build removes old ones too.
// A missing, unwritable or rejected cache costs only the ordinary compile.
// The caches live beside the bundle, writable only by whoever owns the code.
import fs from "node:fs";
import path from "node:path";
import vm from "node:vm";
import Module from "node:module";

type Wrapper = (exports: unknown, require: NodeRequire, module: Module, filename: string, dirname: string) => void;

export const buildCacheFile = (bundle: string): string => bundle + ".cache";
export const roleCacheFile = (bundle: string, hash: string, role: string): string => `${bundle}.${hash}.${role}.cache`;
export const unusualCacheFile = (bundle: string, hash: string, role: string): string => `${bundle}.${hash}.${role}.unusual.cache`;

const UNUSUAL = Symbol.for("shimlab.code-cache.unusual");

/** This run takes a path only some runs of its role take (a module loaded on first use): its compiled code is not its role's cache. */
export function markUnusual(): void {
  (globalThis as Record<symbol, unknown>)[UNUSUAL] = true;
}

function read(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined;
  }
}

/** The roles whose bundle source is mapped (wrappedSource): the daemon and the agent. */
export const LONG_LIVED: readonly string[] = ["daemon", "agent"];

/** <bundle>.wrapped, written by the build for LONG_LIVED roles' bundles: the bundle as V8 compiles it (Module.wrap), byte for byte. */
export const wrappedFile = (bundle: string): string => bundle + ".wrapped";

/**
 * The bundle's wrapped source. Read through the addon's mapLatin1 when it can: the characters then
 * stay in the file's pages, shared by every daemon and agent, instead of a private copy in each
 * V8 heap (V8 keeps a script's source for as long as its functions may be compiled: ~1.2 MB of
 * the daemon's). Else read and wrapped here. The addon is left where native() finds it.
 */
function wrappedSource(bundle: string): string {
  try {
    // a .wrapped from another build (older than the bundle, or of another length) is never mapped, nor run
    const [w, b] = [fs.statSync(wrappedFile(bundle)), fs.statSync(bundle)];
    if (w.size !== Module.wrap("").length + b.size || w.mtimeMs < b.mtimeMs) throw new Error("stale");
    const addonFile = process.env.SHIMLAB_NATIVE ?? path.resolve(path.dirname(bundle), "..", "..", "native", "build", "shimlab.node");
    const m = { exports: {} as { mapLatin1?(p: string): string | null } };
    process.dlopen(m, addonFile);
    (globalThis as Record<symbol, unknown>)[Symbol.for("shimlab.native")] = m.exports;
    const mapped = m.exports.mapLatin1?.(wrappedFile(bundle));
    if (mapped) return mapped;
  } catch {
    /* no addon here: the ordinary read */
  }
  return Module.wrap(fs.readFileSync(bundle, "utf8"));
}

/** Runs bundle as a CommonJS module (its own require, module, __filename, __dirname); role "" uses the build-time cache only. */
export function runWithCodeCache(bundle: string, hash: string, role: string): void {
  const usualFile = role ? roleCacheFile(bundle, hash, role) : "";
  const unusualFile = role ? unusualCacheFile(bundle, hash, role) : "";
  let cachedData = usualFile ? read(usualFile) : undefined;
  let loaded: "usual" | "unusual" | "" = cachedData ? "usual" : "";
  if (!loaded && unusualFile) loaded = (cachedData = read(unusualFile)) ? "unusual" : "";
  if (!loaded) cachedData = read(buildCacheFile(bundle));
  // mapped only for the processes that live as long as a pod: a `start` or `delete` is gone in milliseconds
  const source = LONG_LIVED.includes(role) ? wrappedSource(bundle) : Module.wrap(fs.readFileSync(bundle, "utf8"));
  const script = new vm.Script(source, { filename: bundle, cachedData });
  if (role) {
    const accepted = loaded && !script.cachedDataRejected ? loaded : "";
    // Written at exit, when this run has compiled all it needed.
    process.once("exit", () => {
      const unusual = (globalThis as Record<symbol, unknown>)[UNUSUAL] === true;
      if (unusual) {
        if (!accepted) saveCache(script, unusualFile);
      } else if (accepted === "unusual") {
        // Everything the unusual cache held is compiled in this run too, and would be in a cache it
        // wrote: the next usual run, with only the build-time cache, writes a clean one.
        fs.rmSync(unusualFile, { force: true });
      } else if (accepted !== "usual") saveCache(script, usualFile);
    });
  }
  const m = new Module(bundle, undefined);
  m.filename = bundle;
  m.paths = (Module as unknown as { _nodeModulePaths(d: string): string[] })._nodeModulePaths(path.dirname(bundle));
  const req = ((id: string) => m.require(id)) as NodeRequire;
  req.resolve = ((id: string) => (Module as unknown as { _resolveFilename(r: string, p: Module): string })._resolveFilename(id, m)) as NodeRequire["resolve"];
  req.main = require.main;
  req.cache = require.cache;
  const fn = script.runInThisContext() as Wrapper;
  fn.call(m.exports, m.exports, req, m, bundle, path.dirname(bundle));
  m.loaded = true;
}

function saveCache(script: vm.Script, file: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o644 });
    fs.renameSync(tmp, file);
  } catch {
    fs.rmSync(tmp, { force: true });
  }
}

/** The build-time cache: top-level code of the bundle, compiled exactly as runWithCodeCache compiles it; and <bundle>.wrapped when asked. */
export function buildCodeCache(bundle: string, o: { wrapped?: boolean } = {}): Buffer {
  const wrapped = Module.wrap(fs.readFileSync(bundle, "utf8"));
  if (o.wrapped) {
    // a new file, never the old one rewritten: running daemons and agents map the old one, and a
    // mapping of a file truncated under it faults (SIGBUS) when V8 next reads the source
    const tmp = `${wrappedFile(bundle)}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, wrapped);
    fs.renameSync(tmp, wrappedFile(bundle));
  }
  return new vm.Script(wrapped, { filename: bundle }).createCachedData();
}
