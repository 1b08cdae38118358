// The factory of warm sandboxes for the `shimlab-warm` variant: started before
// the lifecycles with the pool size the config says, stopped after. Its pool
// refills at low priority while the measured lifecycles run, as on a node.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { ROOT } from "./env.mjs";

const DIR = path.join(os.tmpdir(), `shimlab-bench-factory-${process.pid}`);
export const WARM_CONFIG = path.join(DIR, "shim.toml");

/** env: the shims' SHIMLAB_CGROUP_PARENT (the factory hands agents only to shims whose containers go where its agents' would). */
export function startFactory(env, size = 2) {
  fs.mkdirSync(DIR, { recursive: true, mode: 0o700 });
  fs.writeFileSync(WARM_CONFIG, `[factory]\nenable = true\nsocket = ${JSON.stringify(path.join(DIR, "factory.sock"))}\npool_size = ${size}\n`);
  return execFileSync(path.join(ROOT, "bin", "shimlab"), ["factory", "start", "--config", WARM_CONFIG, "--dir", DIR], { encoding: "utf8", env: { ...process.env, ...env } }).trim();
}

export function factoryStatusLine() {
  return execFileSync(path.join(ROOT, "bin", "shimlab"), ["factory", "status", "--config", WARM_CONFIG, "--dir", DIR], { encoding: "utf8" }).trim();
}

export function stopFactory() {
  try {
    execFileSync(path.join(ROOT, "bin", "shimlab"), ["factory", "stop", "--config", WARM_CONFIG, "--dir", DIR], { encoding: "utf8" });
  } finally {
    fs.rmSync(DIR, { recursive: true, force: true });
  }
}
