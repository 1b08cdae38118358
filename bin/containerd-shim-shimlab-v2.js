#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// containerd runs this file three times per task (start, the daemon, delete);
// env drops NODE_EXTRA_CA_CERTS before Node starts, which saves ~40 ms a run.
// The one-file bundle with its V8 code cache (scripts/bundle.mjs) loads much
// faster than the module tree; it is used only when it is newer than tsc's
// last build, so a bare `tsc` never leaves a stale bundle in charge.
// SHIMLAB_NO_BUNDLE=1 runs the module tree (for comparisons).
const fs = require("fs");
const dist = __dirname + "/../dist";
const mtime = (f) => fs.statSync(f, { throwIfNoEntry: false })?.mtimeMs ?? 0;
if (!process.env.SHIMLAB_NO_BUNDLE && mtime(dist + "/bundle/shim-main.js") >= mtime(dist + "/.tsbuildinfo")) require("../dist/bundle/shim-main.js");
else require("../dist/shim/main.js").main(process.argv.slice(2));
