#!/usr/bin/env node
// Bundles the programs containerd starts (the shim: start, daemon, delete)
// and the mock agent each into one file under dist/bundle/, from tsc's output,
// with a V8 code cache and a launcher each (src/util/code-cache.ts).
// One file loads faster than a tree of a hundred modules: no path resolution,
// no per-module wrapper compile; lazy requires stay lazy (esbuild keeps each
// module in its own closure, run on first require).
// bin/containerd-shim-shimlab-v2.js uses dist/bundle/shim-main.js when it exists, and the launcher
// (bin/containerd-shim-shimlab-v2) starts the daemon from it.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(repo, "dist");
const out = path.join(dist, "bundle");
const { buildCodeCache, buildCacheFile } = createRequire(import.meta.url)(path.join(dist, "util", "code-cache.js"));

// The shim's action is its last argument (containerd puts it there, after
// the flags); `start` launches the daemon with -socket. `start` and `delete`
// run from a small bundle without the daemon (~45 KB instead of ~400 KB to
// read and hold). A wrong guess of the role costs speed, never correctness:
// the small bundle's daemon module hands over to the full bundle.
const ACTION = `((a) => { const last = a[a.length - 1], prev = a[a.length - 2] || ""; const takesValue = prev.startsWith("-") && !prev.includes("=") && !["-debug", "-v", "--debug", "-version"].includes(prev); return (last === "start" || last === "delete") && !takesValue ? last : ""; })(process.argv)`;

const programs = [
  { name: "shim-cli", entry: "./shim/main", stubDaemon: true },
  { name: "shim", entry: "./shim/main" },
  { name: "mock-agent", entry: "./mock-agent/main" },
  // The guest's agent, made into a V8 startup snapshot when the guest image is built
  // (src/guest-image/snapshot.ts): every module is loaded at build time, main runs on start.
  {
    name: "mock-agent-snapshot",
    contents: `const m = require("./mock-agent/main");\nrequire("node:v8").startupSnapshot.setDeserializeMainFunction(() => m.main(process.argv.slice(2)));`,
    noCodeCache: true,
  },
];
// The loader is inlined into each launcher rather than required: a require
// costs a path resolution, realpath and package.json lookups, ~1 ms of every
// start, daemon, agent and delete.
const LOADER = `const { runWithCodeCache } = (function (exports) {\n${fs.readFileSync(path.join(dist, "util", "code-cache.js"), "utf8").replace(/\/\/# sourceMappingURL=.*$/m, "")}\nreturn exports;\n}).call({}, {});\n`;
const launchers = [
  {
    name: "shim-main",
    code: (h) =>
      `const action = ${ACTION};\n` +
      `const [bundle, role] = action ? ["shim-cli", action] : ["shim", process.argv.includes("-socket") || process.argv[2] === "-park" ? "daemon" : ""];\n` +
      `if (process.env.SHIMLAB_NO_CODE_CACHE) require(\`./\${bundle}.js\`);\n` +
      `else {\n${LOADER}runWithCodeCache(\`\${__dirname}/\${bundle}.js\`, ${JSON.stringify(h)}[bundle], role);\n}\n`,
  },
  {
    name: "mock-agent-main",
    code: (h) =>
      `if (process.env.SHIMLAB_NO_CODE_CACHE) require("./mock-agent.js");\n` +
      `else {\n${LOADER}runWithCodeCache(__dirname + "/mock-agent.js", ${JSON.stringify(h["mock-agent"])}, "agent");\n}\n`,
  },
];

// In shim-cli.js, what main.ts loads for the daemon and for tracing is
// replaced: the daemon module runs the full bundle instead, the early agent
// boot is done there, and tracing (SHIMLAB_TRACE only) loads tsc's module
// tree. Otherwise their imports (the agent's gRPC codecs, the QEMU
// hypervisor, the TOML parser) would make the small bundle ten times larger,
// and every start and delete would read it.
const CLI_STUBS = {
  "./daemon": `exports.runDaemon = () => require(__dirname + "/shim.js");`,
  "./early-agent": `exports.bootDaemon = () => undefined;`,
  "./park": `exports.park = () => require(__dirname + "/shim.js");`,
  "../trace/shim": `module.exports = require(__dirname + "/../trace/shim.js");`,
};
const daemonStub = {
  name: "daemon-stub",
  setup(b) {
    b.onResolve({ filter: /^(\.\/daemon|\.\/early-agent|\.\/park|\.\.\/trace\/shim)$/ }, (a) => (a.importer.endsWith(path.join("shim", "main.js")) ? { path: a.path, namespace: "stub" } : undefined));
    b.onLoad({ filter: /.*/, namespace: "stub" }, (a) => ({ contents: CLI_STUBS[a.path], loader: "js" }));
  },
};

fs.mkdirSync(out, { recursive: true });
for (const f of fs.readdirSync(out)) if (f.endsWith(".cache") || f.endsWith(".tmp") || f.endsWith(".wrapped")) fs.rmSync(path.join(out, f));
const hashes = {};
for (const p of programs) {
  const bundle = path.join(out, `${p.name}.js`);
  await build({
    stdin: { contents: p.contents ?? `require(${JSON.stringify(p.entry)}).main(process.argv.slice(2));`, resolveDir: dist, loader: "js" },
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    outfile: bundle,
    define: { SHIMLAB_BUNDLE: "true" },
    plugins: p.stubDaemon ? [daemonStub] : [],
    // the addon's path is computed at run time (native/build/shimlab.node, two levels up as from dist/<dir>/)
    logOverride: { "require-resolve-not-external": "silent", "unsupported-require-call": "silent" },
    logLevel: "warning",
    legalComments: "none",
    // a third less to read and hold per process; names stay, so stacks still read
    minifyWhitespace: true,
    minifySyntax: true,
  });
  // the daemon's and the agent's bundles also as V8 compiles them, for the loader to map (code-cache.ts wrappedSource)
  if (!p.noCodeCache) fs.writeFileSync(buildCacheFile(bundle), buildCodeCache(bundle, { wrapped: p.name !== "shim-cli" }));
  hashes[p.name] = crypto.createHash("sha256").update(fs.readFileSync(bundle)).digest("hex").slice(0, 12);
}
for (const l of launchers) {
  fs.writeFileSync(path.join(out, `${l.name}.js`), `// Generated by scripts/bundle.mjs: runs a bundle through its code cache (src/util/code-cache.ts).\n${l.code(hashes)}`);
}
console.log(`bundle: ${programs.map((p) => `dist/bundle/${p.name}.js`).join(", ")} (+ code caches, launchers ${launchers.map((l) => l.name + ".js").join(", ")})`);
