// Running helper programs (runc, mount) from the agent. With a reaper they are
// posix_spawn()ed through the addon and their exits come from the reaper: libuv
// fork()s, which copies the page tables of the agent (~40 MB of Node), 1-2 ms
// of CPU and 2-4 ms of wall time per spawn against ~0.25 ms (bench/README.md),
// and a container's create, start and delete take three. Without one
// (an agent with the host runtime), child_process, whose children libuv reaps.
import fs from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { spawn } from "node:child_process";
import { native } from "../../native";
import type { Reaper } from "../reaper";
import { makePipes } from "./stdio";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where bin is on PATH, as execvp would find it; null when nowhere. */
export function findOnPath(bin: string, env: NodeJS.ProcessEnv = process.env): string | null {
  for (const d of (env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const p = path.join(d || ".", bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** cmd as posix_spawn(3) wants it: a path, found on PATH as execvp would. */
function commandPath(cmd: string, env: NodeJS.ProcessEnv): string {
  if (cmd.includes("/")) return cmd;
  const p = findOnPath(cmd, env);
  if (!p) throw Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: "ENOENT" });
  return p;
}

/**
 * posix_spawn of cmd with fds[i] as its fd i (-1: /dev/null), in a session of its own; its exit
 * status (or 128 + signal) from the reaper, which must be started (SIGCHLD).
 */
export function spawnReaped(reaper: Reaper, cmd: string, args: string[], fds: number[], o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): { pid: number; exit: Promise<number> } {
  const env = o.env ?? process.env;
  const file = commandPath(cmd, env);
  const envList = Object.entries(env)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  const pid = native().spawnDetached(file, [cmd, ...args], envList, o.cwd ?? process.cwd(), fds);
  return { pid, exit: new Promise((resolve) => reaper.watch(pid, resolve)) };
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the process's stdin, which then ends (it ends at once without). */
  input?: string;
}

function runSpawned(reaper: Reaper, cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const pipes = makePipes();
  let child: { pid: number; exit: Promise<number> };
  try {
    child = spawnReaped(reaper, cmd, args, pipes.child, opts);
  } catch (e) {
    pipes.stdin.destroy();
    pipes.stdout.destroy();
    pipes.stderr.destroy();
    return Promise.reject(e);
  } finally {
    pipes.closeChildEnds();
  }
  pipes.stdin.end(opts.input ?? "");
  const text = (r: Readable) =>
    new Promise<string>((resolve) => {
      let s = "";
      r.setEncoding("utf8");
      r.on("data", (d: string) => (s += d));
      r.on("error", () => resolve(s));
      r.on("close", () => resolve(s));
    });
  return Promise.all([child.exit, text(pipes.stdout), text(pipes.stderr)]).then(([code, stdout, stderr]) => ({ code, stdout, stderr }));
}

/**
 * With a reaper, posix_spawn (the reaper has the exit); without one, child_process (libuv has it).
 * An agent with a reaper starts nothing through child_process, so the reaper never takes the exit
 * of a process libuv waits for.
 */
export function run(reaper: Reaper | null, cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (reaper) return runSpawned(reaper, cmd, args, opts);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout?.on("data", (d) => (out += d));
    child.stderr?.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code, sig) => resolve({ code: code ?? 128 + (sig ? require("node:os").constants.signals[sig] : 0), stdout: out, stderr: err }));
    // EPIPE when the process exits without reading its input: its exit status says why, and an
    // 'error' with no listener would end the agent
    child.stdin?.on("error", () => {});
    child.stdin?.end(opts.input ?? "");
  });
}

export async function mustRun(reaper: Reaper | null, cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(reaper, cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}
