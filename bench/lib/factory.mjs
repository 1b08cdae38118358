// The factories of warm sandboxes for the `_warm` figures: one per containerd
// the benchmark starts (a factory hands agents only to shims whose containers'
// cgroups go where its agents' would), started before the measured pods with
// the pool size its config says, stopped after. Pools refill at low priority
// while the measured pods run, as on a node.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { ROOT } from "./env.mjs";

const shimlab = (args, env) => execFileSync(path.join(ROOT, "bin", "shimlab"), args, { encoding: "utf8", env: { ...process.env, ...env } }).trim();

/**
 * A factory's directory and the shim config that names its socket; `config` can be given to a
 * runtime before start(). `toml`: the rest of that config (a [qemu] table, for a pool of VMs).
 */
export function warmFactory(tag, size = 2, toml = "") {
  const dir = path.join(os.tmpdir(), `shimlab-bench-factory-${process.pid}-${tag}`);
  const config = path.join(dir, "shim.toml");
  const args = (cmd) => ["factory", cmd, "--config", config, "--dir", dir];
  const socket = path.join(dir, "factory.sock");
  return {
    config,
    socket,
    /** env: the shims' SHIMLAB_CGROUP_PARENT. Writes the config (shims read it only when they start). */
    start: (env) => {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(config, `${toml}[factory]\nenable = true\nsocket = ${JSON.stringify(socket)}\npool_size = ${size}\n`);
      return shimlab(args("start"), env);
    },
    status: () => shimlab(args("status")),
    stop: () => {
      try {
        shimlab(args("stop"));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** The `shimlab-warm` variant's factory, beside the lifecycle benchmark's containerd. */
export const lifecycleFactory = warmFactory("lifecycle");
export const WARM_CONFIG = lifecycleFactory.config;
