// shimlab built differently, side by side in one run: containerd finds the
// binary for runtime io.containerd.<name>.v2 as containerd-shim-<name>-v2 on
// its PATH, so each variant is a two-line sh wrapper that sets its environment
// and execs the real binary (one extra exec of sh, ~1 ms, against it).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./env.mjs";
import { WARM_CONFIG } from "./factory.mjs";

export const VARIANTS = {
  // the module tree as tsc emits it, without the bundle or code cache
  "shimlab-tree": { SHIMLAB_NO_BUNDLE: "1" },
  // the bundle with no code cache
  "shimlab-nocache": { SHIMLAB_NO_CODE_CACHE: "1" },
  // another build of shimlab (SHIMLAB_BENCH_BASE=<its bin/containerd-shim-shimlab-v2>),
  // e.g. main before a change, for before/after figures from one run
  "shimlab-base": {},
  // the TypeScript shim for start and delete too, without the launcher
  // (native/oneshot.c) that bin/containerd-shim-shimlab-v2 is
  "shimlab-node": {},
  // warm sandboxes: the shim takes its agent from a `shimlab factory` that
  // bench/run.mjs starts beside it (lib/factory.mjs), instead of booting one
  "shimlab-warm": { SHIMLAB_CONFIG: WARM_CONFIG },
};

const binOf = (n) =>
  n === "shimlab-base" ? process.env.SHIMLAB_BENCH_BASE : path.join(ROOT, "bin", n === "shimlab-node" ? "containerd-shim-shimlab-v2.js" : "containerd-shim-shimlab-v2");

export function variantBinDir(names) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-bench-bin-"));
  for (const n of names) {
    if (!VARIANTS[n] || !binOf(n)) throw new Error(`variant ${n}: unknown, or SHIMLAB_BENCH_BASE unset`);
    const env = Object.entries(VARIANTS[n]).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
    const f = path.join(dir, `containerd-shim-${n}-v2`);
    fs.writeFileSync(f, `#!/bin/sh\n${env} exec ${binOf(n)} "$@"\n`, { mode: 0o755 });
  }
  return dir;
}

export const runtimeOf = (name) => `io.containerd.${name}.v2`;
