// The TypeScript `start`'s side of a parked shim daemon (src/shim/park.ts): what native/oneshot.c
// does for containerd 1.x, for the starts it hands over (containerd 2.x, anything unusual). With
// [factory] enable in the configuration the daemon will read, it asks the factory for one and hands
// it the listening socket, the log fifo and the words a spawned daemon would have had. Any failure
// on the way is 0: `start` then spawns its daemon as without a factory.
import fs from "node:fs";
import { CONFIG_ENV_NAME, factorySettings } from "./factory-settings";
import { factoryCall } from "../hypervisor/factory/client";
import { formatHandoff } from "./handoff";
import { native } from "../native";

export interface ParkedStart {
  /** The daemon's environment, as `start` would give it (containerd's, with its own settings). */
  env: NodeJS.ProcessEnv;
  script: string;
  cwd: string;
  args: string[];
  listenFd: number;
  logFd: number;
}

/** How long the factory may take to answer: past this, spawning is no slower. */
const ASK_MS = 1_000;
/** How long the parked daemon may take to say READY (its cgroups' move included). */
const READY_MS = 2_000;

/** The parked daemon's pid once it took over, else 0 (and why, for the log). */
export async function parkedDaemon(s: ParkedStart): Promise<{ pid: number; why?: string }> {
  // [factory] alone, as loadConfig reads it; the daemon then checks the whole file with loadConfig
  let socket: string;
  try {
    const file = s.env[CONFIG_ENV_NAME];
    if (!file) return { pid: 0, why: "no configuration" };
    const raw = (require("smol-toml") as typeof import("smol-toml")).parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    const f = factorySettings(raw.factory, (k) => `${file}: ${k}`);
    if (!f.enable) return { pid: 0, why: "the configuration does not enable the factory" };
    socket = f.socket;
  } catch (e) {
    return { pid: 0, why: (e as Error).message };
  }
  const r = await factoryCall(socket, { op: "daemon", pid: process.pid }, ASK_MS).catch((e: Error) => ({ ok: false as const, error: e.message }));
  if (!r.ok || !r.daemon) return { pid: 0, why: r.ok ? "no daemon in the answer" : r.error };
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.env)) if (v !== undefined) env[k] = v;
  const words = formatHandoff({ node: process.execPath, script: s.script, cwd: s.cwd, factory: socket, args: s.args, env });
  const got = native().handOff(r.daemon.socket, words, s.logFd >= 0 ? [s.listenFd, s.logFd] : [s.listenFd], READY_MS);
  return typeof got === "number" ? { pid: got } : { pid: 0, why: got };
}
