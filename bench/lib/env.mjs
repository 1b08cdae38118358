// What every benchmark shares: the built shimlab (dist/), the runtimes under
// comparison, a private containerd, CPU placement and the machine's noise.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { spawn, execFileSync } from "node:child_process";

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");
export const require = createRequire(path.join(ROOT, "package.json"));
export const dist = (m) => require(path.join(ROOT, "dist", m));

export const RUNTIMES = {
  shimlab: "io.containerd.shimlab.v2",
  runc: "io.containerd.runc.v2",
};

/** The CPUs this process may run on, as taskset prints them ("0", "0,1"). */
export function cpuList() {
  try {
    return execFileSync("taskset", ["-cp", String(process.pid)]).toString().split(":").pop().trim();
  } catch {
    return "unknown";
  }
}

/** The CPU placement: "cpu0" when everything (this process, containerd, shims, ctr) is pinned to CPU 0. */
export function placement() {
  const cpus = cpuList();
  return { mode: cpus === "0" ? "cpu0" : "free", cpus, ncpu: os.cpus().length };
}

export function loadavg() {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

/** Wall time of a command in ms (spawn → exit), with its exit code. */
export function timed(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], ...opts });
    let err = "";
    child.stderr?.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code, err }));
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

