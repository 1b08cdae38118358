// A parked shim daemon: a factory's (src/hypervisor/factory/daemon-pool.ts) Node process that has
// already paid what every daemon pays before its first call (Node's bootstrap, the bundle and its
// code cache, the Task and Sandbox services' modules, the TOML parser) and waits for a `start` to
// take it. The launcher (native/oneshot.c) asks the factory for one, connects to its socket and
// hands it what a daemon it spawned would have had: the listening socket (fd 3), the log fifo
// (fd 2), its argv, environment and working directory. From then on it is that daemon, in the
// launcher's cgroups, niceness, OOM score, limits and umask. In a host-agent pool it also holds a
// warm agent, adopted and dialled while it waits (src/hypervisor/factory/held.ts), which moves with it.
//
// It never decides differently from a daemon the launcher would have spawned: what it read before
// the hand-over (the Node binary, the bundle, the environment that loading reads) must be what
// that daemon would have read, and the configuration must enable this very factory; otherwise it
// refuses, the launcher spawns its own, and it exits. The launcher answers "GO" to its "READY"
// before either commits, so a launcher that gave up waiting never shares its socket.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { native } from "../native";
import { parseFlags, type ShimFlags } from "./flags";
import { validateId } from "./identifiers";
import { loadConfig, type ShimConfig } from "./config";
import { joinCgroupsOfLater } from "../util/cgroup";
import { setProcessPriority } from "../util/proc";
import { markUnusual } from "../util/code-cache";
import { bundleStamp } from "../util/bundle-stamp";
import { parseHandoff, type Handoff } from "./handoff";
import { PARK_ARG, PARKED_CLAIM_MS, PARKED_HOLD_MS, PARKED_LIFELINE_FD, PARKED_WORD } from "../hypervisor/factory/protocol";
import { dropHeld, holdWarmAgent } from "../hypervisor/factory/held";

/** How long the launcher has to say GO (native/oneshot.c waits 2 s for READY). */
const GO_MS = 2_000;
/**
 * What is read while loading, before the hand-over: a launcher whose environment sets any of these
 * otherwise than the factory did gets a daemon of its own. Everything else is read after it.
 */
export const LOAD_TIME_ENV = ["NODE_OPTIONS", "NODE_PATH", "SHIMLAB_NATIVE", "SHIMLAB_NO_CODE_CACHE", "SHIMLAB_NO_BUNDLE", "SHIMLAB_TRACE"];

interface Parked {
  script: string;
  /** The bundle's files as they were when this process loaded them. */
  stamp: string;
  env: NodeJS.ProcessEnv;
}

/** Why this parked daemon must not become the daemon `h` asks for, or the daemon's flags and configuration. */
export function refusal(h: Handoff, p: Parked): { why: string } | { flags: ShimFlags; config: ShimConfig } {
  const real = (f: string) => {
    try {
      return fs.realpathSync(f);
    } catch {
      return f;
    }
  };
  if (real(h.node) !== real(process.execPath)) return { why: `another node (${h.node})` };
  if (real(h.script) !== real(p.script)) return { why: `another shim (${h.script})` };
  if (bundleStamp(p.script) !== p.stamp) return { why: "the shim was rebuilt since this daemon loaded it" };
  for (const k of LOAD_TIME_ENV) if ((h.env[k] ?? "") !== (p.env[k] ?? "")) return { why: `${k} differs` };
  let flags: ShimFlags;
  try {
    flags = parseFlags(h.args);
    if (flags.action !== "" || !flags.socket) throw new Error("not a daemon's command line");
    validateId("namespace", flags.namespace);
    validateId("id", flags.id);
  } catch (e) {
    return { why: `arguments: ${(e as Error).message}` };
  }
  let config: ShimConfig;
  try {
    config = loadConfig(undefined, h.env);
  } catch (e) {
    return { why: `configuration: ${(e as Error).message}` };
  }
  // The factory is opt-in per configuration: this one must enable it, at the socket the launcher
  // asked (the launcher's reading of [factory] and loadConfig's agree, or nothing happens).
  if (!config.factory.enable || path.resolve(config.factory.socket) !== path.resolve(h.factory)) return { why: "the configuration does not enable the factory the launcher asked" };
  return { flags, config };
}

/** Becomes the launcher's daemon: its process attributes, then its fds, environment and directory. */
function become(launcher: number, h: Handoff, fds: number[]): void {
  const a = native();
  // what a daemon the launcher spawned would have inherited (its niceness and cgroups: on arrival)
  try {
    fs.writeFileSync("/proc/self/oom_score_adj", fs.readFileSync(`/proc/${launcher}/oom_score_adj`, "utf8"));
  } catch {
    /* not ours to change: as a spawned daemon, it keeps what it has */
  }
  a.adoptLimitsOf(launcher);
  const umask = /^Umask:\s*([0-7]+)$/m.exec(fs.readFileSync(`/proc/${launcher}/status`, "utf8"));
  if (umask) process.umask(parseInt(umask[1], 8));
  const [socket, log] = fds;
  a.dup2(socket, 3);
  a.closeFd(socket);
  if (log !== undefined) {
    a.dup2(log, 2);
    a.closeFd(log);
  } else {
    const nul = fs.openSync("/dev/null", "w");
    a.dup2(nul, 2);
    fs.closeSync(nul);
  }
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, h.env);
  process.argv = [process.execPath, h.script, ...h.args];
  process.chdir(h.cwd);
}

export async function park(args: string[]): Promise<void> {
  const [socket, factorySocket, holdAgents] = args;
  if (!socket || !factorySocket) {
    process.stderr.write(`usage: shim-main.js ${PARK_ARG} <socket> <factory socket> [<agent runtime to hold an agent of>]\n`);
    process.exit(2);
  }
  // Its code is not a usual daemon's (this module, the TOML parser, all loaded up front): a cache it
  // wrote would hold them for every daemon after it (src/util/code-cache.ts).
  markUnusual();
  // what every daemon loads before its first call, loaded now
  const { runDaemon } = require("./daemon") as typeof import("./daemon");
  const { bootDaemon } = require("./early-agent") as typeof import("./early-agent");
  require("smol-toml");
  const a = native();
  const parked: Parked = { script: process.argv[1], stamp: bundleStamp(process.argv[1]), env: { ...process.env } };
  // A host-agent pool's daemon holds an agent, adopted and dialled before any pod asks (held.ts).
  // Whatever ends this process before a pod claims it kills it.
  process.on("exit", dropHeld);
  let held = holdAgents ? await holdWarmAgent(factorySocket, holdAgents, PARKED_HOLD_MS) : null;
  // its directory ends the PARKED line: one that would end it early is not held
  if (held?.agent.dir.includes("\n")) {
    dropHeld();
    held = null;
  }
  fs.rmSync(socket, { force: true });
  const listenFd = a.listenUnix(socket, 4);
  try {
    fs.writeSync(PARKED_LIFELINE_FD, `${PARKED_WORD}${held ? ` ${held.agent.pid} ${held.agent.startTime} ${held.agent.dir}` : ""}\n`);
  } catch {
    /* the factory is gone: the wait below sees its EOF */
  }
  const got = a.awaitHandoff(listenFd, PARKED_LIFELINE_FD, PARKED_CLAIM_MS);
  a.closeFd(listenFd);
  fs.rmSync(socket, { force: true });
  if ("gone" in got) process.exit(0);
  // Out of the pool's niceness and background CPU share first: what follows is on a pod's critical
  // path. The cgroups' move waits for an RCU grace period on libuv's threads while this one checks
  // the hand-over (a refused one ends this process anyway); READY waits for it, so that from the
  // pod's first call on, its CPU and memory are the launcher's cgroups'.
  try {
    setProcessPriority(process.pid, os.getPriority(got.pid));
  } catch {
    /* the launcher is gone: it will not say GO */
  }
  const moved = joinCgroupsOfLater(process.pid, got.pid);
  // the agent held goes where the daemon goes, at its priority (it took the parked daemon's)
  const agent = held?.agent;
  let agentMoved: Promise<void> = Promise.resolve();
  if (agent) {
    try {
      setProcessPriority(agent.pid, os.getPriority(got.pid));
    } catch {
      /* the launcher or the agent is gone: the first is refused below, the second not claimed */
    }
    agentMoved = joinCgroupsOfLater(agent.pid, got.pid);
  }
  const refuse = (why: string) => {
    for (const fd of got.fds) {
      try {
        a.closeFd(fd);
      } catch {
        /* become() had moved it already */
      }
    }
    // the launcher hangs up on anything but READY: this only waits for that
    a.confirmHandoff(got.conn, `REFUSED ${why.replace(/\n/g, " ")}\n`, 1_000);
    process.stderr.write(`parked shim daemon ${process.pid}: refused a hand-over: ${why}\n`);
    process.exit(0);
  };
  let h: Handoff;
  try {
    h = parseHandoff(got.data);
  } catch (e) {
    return refuse((e as Error).message);
  }
  if (got.fds.length < 1) return refuse("no listening socket came with it");
  const verdict = refusal(h, parked);
  if ("why" in verdict) return refuse(verdict.why);
  try {
    become(got.pid, h, got.fds);
  } catch (e) {
    return refuse(`taking the launcher's place: ${(e as Error).message}`);
  }
  await Promise.all([moved, agentMoved]);
  if (!a.confirmHandoff(got.conn, `READY ${process.pid}\n`, GO_MS)) process.exit(0);
  a.closeFd(PARKED_LIFELINE_FD);
  // the sandbox's driver claims the agent held as it boots, if its configuration can use it
  const boot = bootDaemon(verdict.flags, h.cwd, { config: verdict.config });
  dropHeld();
  runDaemon(verdict.flags, boot);
}
