// The factories of warm sandboxes for the `_warm` figures: one per containerd
// the benchmark starts (a factory hands agents only to shims whose containers'
// cgroups go where its agents' would), started before the measured pods with
// the pool size its config says, stopped after. Pools refill at low priority
// while the measured pods run, as on a node; the lifecycle benchmark waits for
// the refill after each warm lifecycle (refilled()), so that the next run, of
// whichever runtime, does not share the CPU with it.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import net from "node:net";
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
    /**
     * Resolves once both pools are full again (the factory's status over its socket, no process
     * started), at most maxMs. A refill is a Node boot or two: run beside the next measured
     * lifecycle, whichever runtime that is, it would be charged to that one.
     */
    /** The factory's status, over its socket. */
    statusNow: () => statusOver(socket),
    refilled: async (maxMs = 10_000) => {
      const t0 = performance.now();
      for (;;) {
        const st = await statusOver(socket).catch(() => null);
        const full = st && st.ready >= st.size && st.booting === 0 && (!st.daemons || (st.daemons.ready >= st.daemons.size && st.daemons.starting === 0));
        if (full || performance.now() - t0 > maxMs) return Boolean(full);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
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

/** The factory's status: one line of JSON each way (src/hypervisor/factory/protocol.ts). */
function statusOver(socket) {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    let buf = "";
    c.setEncoding("utf8");
    c.on("connect", () => c.write('{"op":"status"}\n'));
    c.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      c.destroy();
      const r = JSON.parse(buf.slice(0, nl));
      if (r.ok) resolve(r.status);
      else reject(new Error(r.error));
    });
    c.on("error", reject);
    c.on("close", () => reject(new Error("factory closed the connection")));
  });
}
