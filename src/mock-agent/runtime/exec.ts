// Running helper programs (runc, mount) from the agent, keeping the reaper
// informed so it never steals an exit status libuv is waiting for.
import { spawn, type SpawnOptions } from "node:child_process";
import type { Reaper } from "../reaper";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(reaper: Reaper | null, cmd: string, args: string[], opts: SpawnOptions & { input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: opts.stdio ?? ["pipe", "pipe", "pipe"] });
    reaper?.trackSpawned(child.pid);
    let out = "";
    let err = "";
    child.stdout?.on("data", (d) => (out += d));
    child.stderr?.on("data", (d) => (err += d));
    child.on("error", (e) => {
      reaper?.untrackSpawned(child.pid);
      reject(e);
    });
    child.on("close", (code, sig) => {
      reaper?.untrackSpawned(child.pid);
      resolve({ code: code ?? 128 + (sig ? require("node:os").constants.signals[sig] : 0), stdout: out, stderr: err });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

export async function mustRun(reaper: Reaper | null, cmd: string, args: string[], opts: SpawnOptions & { input?: string } = {}): Promise<string> {
  const r = await run(reaper, cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}
