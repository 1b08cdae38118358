// Running helper programs (runc, mount) from the agent. With a reaper they are
// posix_spawn()ed through the addon and their exits come from the reaper: libuv
// fork()s, which copies the page tables of the agent (~40 MB of Node), 1-2 ms
// of CPU and 2-4 ms of wall time per spawn against ~0.25 ms (bench/README.md),
// and a container's create, start and delete take three. Without one
// (the host runtime's callers), child_process, whose children libuv reaps.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { spawn, type SpawnOptions } from "node:child_process";
import { native } from "../../native";
import type { Reaper } from "../reaper";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** cmd as posix_spawn(3) wants it: a path, found on PATH as execvp would. */
export function commandPath(cmd: string, env: NodeJS.ProcessEnv = process.env): string {
  if (cmd.includes("/")) return cmd;
  for (const d of (env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const p = path.join(d || ".", cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  throw Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: "ENOENT" });
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

/** A pipe's read end as a stream (non-blocking, for libuv). */
export function readStream(fd: number): net.Socket {
  native().setNonBlocking(fd);
  return new net.Socket({ fd, readable: true, writable: false });
}

function closeAll(fds: number[]): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
  }
}

function runSpawned(reaper: Reaper, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string }): Promise<RunResult> {
  const n = native();
  const out = n.pipe();
  const err = n.pipe();
  const inp = opts.input !== undefined ? n.pipe() : null;
  let child: { pid: number; exit: Promise<number> };
  try {
    child = spawnReaped(reaper, cmd, args, [inp ? inp.read : -1, out.write, err.write], opts);
  } catch (e) {
    closeAll([out.read, err.read, ...(inp ? [inp.write] : [])]);
    return Promise.reject(e);
  } finally {
    // The child's ends are the child's now (or nobody's).
    closeAll([out.write, err.write, ...(inp ? [inp.read] : [])]);
  }
  if (inp) {
    n.setNonBlocking(inp.write);
    const w = new net.Socket({ fd: inp.write, readable: false, writable: true });
    w.on("error", () => {}); // it need not read it all
    w.end(opts.input ?? "");
  }
  const text = (fd: number) =>
    new Promise<string>((resolve) => {
      let s = "";
      const r = readStream(fd);
      r.setEncoding("utf8");
      r.on("data", (d: string) => (s += d));
      r.on("error", () => resolve(s));
      r.on("close", () => resolve(s));
    });
  return Promise.all([child.exit, text(out.read), text(err.read)]).then(([code, stdout, stderr]) => ({ code, stdout, stderr }));
}

export function run(reaper: Reaper | null, cmd: string, args: string[], opts: SpawnOptions & { input?: string } = {}): Promise<RunResult> {
  if (reaper && !opts.stdio && Object.keys(opts).every((k) => k === "env" || k === "cwd" || k === "input")) {
    return runSpawned(reaper, cmd, args, { env: opts.env, cwd: opts.cwd as string | undefined, input: opts.input });
  }
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
