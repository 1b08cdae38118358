// shimlab's configuration, a TOML file in the manner of Kata's
// configuration.toml. containerd's runtime option ConfigPath names it, else
// the environment variable SHIMLAB_CONFIG; without either, the defaults run
// the mock agent as a host process.
//
//   hypervisor = "none"            # or "qemu"
//   [agent]
//   runtime = "auto"               # runc | host | auto (mock agent on the host)
//   dial_timeout_ms = 45000
//   [qemu]                         # read when hypervisor = "qemu"
//   machine = "q35"                # keys: the QEMU driver's config.ts
//   [factory]                      # warm sandboxes (`shimlab factory`), as Kata's [factory]
//   enable = false                 # take a warm agent from the factory's pool; boot one when it has none
//   socket = "/run/shimlab-factory/factory.sock"
//   pool_size = 2                  # read by `shimlab factory start --config`
//   daemon_pool_size = 2           # parked shim daemons for `start` to take (default: pool_size)
import fs from "node:fs";
import { invalidArgument } from "../errdefs";
import type { Hypervisor, HypervisorKind } from "../hypervisor/types";
import { HYPERVISOR_KINDS, checkDriverSettings, createDriver, createWarmer, isHypervisorKind, type DriverSettings } from "../hypervisor/drivers";
import type { Warmer } from "../hypervisor/factory/warmer";
import type { Logger } from "../util/logger";
import { CONFIG_ENV_NAME, factorySettings, type FactorySettings } from "./factory-settings";

export type { FactorySettings } from "./factory-settings";

export interface ShimConfig {
  /** Where it came from: a path, or "defaults". */
  source: string;
  hypervisorKind: HypervisorKind;
  agentRuntime: "auto" | "runc" | "host";
  dialTimeoutMs: number;
  debug: boolean;
  qemu: Record<string, unknown>;
  /** The factory: its socket when enabled, and the pool size `shimlab factory` keeps. */
  factory: FactorySettings;
  /** Environment the shim runs with (containerd's). */
  env: NodeJS.ProcessEnv;
  hypervisor(): Hypervisor;
  /** What `shimlab factory` keeps warm for this configuration's driver. */
  warmer(o: { logger: Logger }): Warmer;
}

export const CONFIG_ENV = CONFIG_ENV_NAME;

function build(raw: Record<string, unknown>, source: string, env: NodeJS.ProcessEnv): ShimConfig {
  const where = (k: string) => `${source}: ${k}`;
  const hv = raw.hypervisor ?? "none";
  if (!isHypervisorKind(hv)) throw invalidArgument(`${where("hypervisor")} = ${JSON.stringify(hv)}: want ${HYPERVISOR_KINDS.map((k) => JSON.stringify(k)).join(" or ")}`);
  const agent = (raw.agent ?? {}) as Record<string, unknown>;
  if (typeof agent !== "object") throw invalidArgument(`${where("[agent]")} must be a table`);
  const rt = env.SHIMLAB_AGENT_RUNTIME ?? agent.runtime ?? "auto";
  if (rt !== "auto" && rt !== "runc" && rt !== "host") throw invalidArgument(`${where("agent.runtime")} = ${JSON.stringify(rt)}: want "auto", "runc" or "host"`);
  const dial = agent.dial_timeout_ms ?? 45_000;
  if (typeof dial !== "number" || dial <= 0) throw invalidArgument(`${where("agent.dial_timeout_ms")} must be a positive number`);
  const qemu = (raw.qemu ?? {}) as Record<string, unknown>;
  const debug = raw.debug === true || env.SHIMLAB_DEBUG === "1";
  const factory = factorySettings(raw.factory, where);
  const settings: DriverSettings = { source, debug, agentRuntime: rt, table: (raw[hv] ?? {}) as Record<string, unknown>, factorySocket: factory.enable ? factory.socket : undefined };
  // A bad [qemu] table is refused when the file is read, not when the first VM boots.
  checkDriverSettings(hv, settings);
  let driver: Hypervisor | null = null;
  const cfg: ShimConfig = {
    source,
    hypervisorKind: hv,
    agentRuntime: rt,
    dialTimeoutMs: dial,
    debug,
    qemu,
    factory,
    env,
    hypervisor() {
      // Built when first asked for, one per configuration: what it booted ahead (prestart) is what Create finds.
      return (driver ??= createDriver(hv, settings));
    },
    warmer: (o) => createWarmer(hv, settings, { ...o, env }),
  };
  return cfg;
}

export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): ShimConfig {
  const file = path || env[CONFIG_ENV];
  if (!file) return build({}, "defaults", env);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw invalidArgument(`cannot read shimlab config ${file}: ${(e as Error).message}`);
  }
  let raw: Record<string, unknown>;
  try {
    // The TOML parser only when there is a file: a daemon on the defaults never loads it.
    raw = (require("smol-toml") as typeof import("smol-toml")).parse(text) as Record<string, unknown>;
  } catch (e) {
    throw invalidArgument(`shimlab config ${file} is not valid TOML: ${(e as Error).message}`);
  }
  return build(raw, file, env);
}
