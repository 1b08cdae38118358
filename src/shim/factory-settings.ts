// The configuration's [factory] table, read alone: by loadConfig (config.ts), and by the TypeScript
// `start`, which needs only this table to decide whether to ask the factory for a parked daemon and
// should not load every driver to know it (src/shim/start-parked.ts).
import { invalidArgument } from "../errdefs";
import { DEFAULT_FACTORY_SOCKET } from "../hypervisor/factory/protocol";

/** The environment variable naming the configuration file (config.ts CONFIG_ENV). */
export const CONFIG_ENV_NAME = "SHIMLAB_CONFIG";

export interface FactorySettings {
  enable: boolean;
  socket: string;
  poolSize: number;
  /** Parked shim daemons (src/shim/park.ts) the factory keeps: `start` takes one instead of starting Node. */
  daemonPoolSize: number;
}

export function factorySettings(raw: unknown, where: (k: string) => string): FactorySettings {
  const t = (raw ?? {}) as Record<string, unknown>;
  if (typeof t !== "object" || Array.isArray(t)) throw invalidArgument(`${where("[factory]")} must be a table`);
  for (const k of Object.keys(t)) if (!["enable", "socket", "pool_size", "daemon_pool_size"].includes(k)) throw invalidArgument(`${where(`factory.${k}`)}: unknown key (want enable, socket, pool_size, daemon_pool_size)`);
  const enable = t.enable ?? false;
  if (typeof enable !== "boolean") throw invalidArgument(`${where("factory.enable")} must be true or false`);
  const socket = t.socket ?? DEFAULT_FACTORY_SOCKET;
  if (typeof socket !== "string" || !socket.startsWith("/")) throw invalidArgument(`${where("factory.socket")} must be an absolute path`);
  const poolSize = t.pool_size ?? 2;
  if (typeof poolSize !== "number" || !Number.isInteger(poolSize) || poolSize < 0 || poolSize > 64) throw invalidArgument(`${where("factory.pool_size")} must be an integer from 0 to 64`);
  const daemonPoolSize = t.daemon_pool_size ?? poolSize;
  if (typeof daemonPoolSize !== "number" || !Number.isInteger(daemonPoolSize) || daemonPoolSize < 0 || daemonPoolSize > 64) throw invalidArgument(`${where("factory.daemon_pool_size")} must be an integer from 0 to 64`);
  return { enable, socket, poolSize, daemonPoolSize };
}

