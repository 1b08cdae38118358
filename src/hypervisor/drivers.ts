// The hypervisor drivers by the kind a configuration names: the shim builds
// its driver here without naming one. The host agent, the default, is loaded
// with the shim; QEMU's driver (its image builder and all) only when a
// configuration builds it. Their reapers, for `delete`, are in reapers.ts.
import type { Hypervisor, HypervisorKind } from "./types";
import { HostAgentHypervisor } from "./host-agent";
import { parseQemuConfig } from "./qemu/config";
import { hostAgentWarmer, type Warmer } from "./factory/warmer";
import { cgroupParent } from "../util/cgroup";
import type { Logger } from "../util/logger";
import { markUnusual } from "../util/code-cache";

/** What the shim's configuration gives a driver. */
export interface DriverSettings {
  /** Where the configuration came from, for error messages. */
  source: string;
  debug: boolean;
  /** The host agent's runtime (the configuration's [agent] runtime). */
  agentRuntime: "auto" | "runc" | "host";
  /** The configuration's table named after the driver ([qemu]), unchecked. */
  table: Record<string, unknown>;
  /** A `shimlab factory` to take warm sandboxes from ([factory] enable). */
  factorySocket?: string;
}

interface Driver {
  /** Refuses bad settings as the configuration is read, not when the first sandbox boots. */
  check?(s: DriverSettings): void;
  create(s: DriverSettings): Hypervisor;
  /** What `shimlab factory` keeps warm for this driver (factory/warmer.ts). */
  warmer(s: DriverSettings, o: { logger: Logger; env: NodeJS.ProcessEnv }): Warmer;
}

const DRIVERS: Record<HypervisorKind, Driver> = {
  none: {
    create: (s) => new HostAgentHypervisor({ agentRuntime: s.agentRuntime, debug: s.debug, factorySocket: s.factorySocket }),
    warmer: (s, o) => hostAgentWarmer({ agentRuntime: s.agentRuntime, debug: s.debug, env: o.env, cgroupParent: cgroupParent(o.env) }),
  },
  qemu: {
    check: (s) => void parseQemuConfig(s.table, s.source),
    create: (s) => {
      markUnusual();
      const { QemuHypervisor } = require("./qemu") as typeof import("./qemu");
      return new QemuHypervisor({ ...QemuHypervisor.configFrom(s.table, s.source), debug: s.debug || s.table.debug === true }, s.factorySocket);
    },
    warmer: (s, o) => {
      const { QemuHypervisor } = require("./qemu") as typeof import("./qemu");
      const { qemuWarmer } = require("./qemu/warm") as typeof import("./qemu/warm");
      // the factory's own driver takes from no factory
      return qemuWarmer(new QemuHypervisor({ ...QemuHypervisor.configFrom(s.table, s.source), debug: s.debug || s.table.debug === true }), o);
    },
  },
};

export const HYPERVISOR_KINDS = Object.keys(DRIVERS) as HypervisorKind[];

export function isHypervisorKind(k: unknown): k is HypervisorKind {
  return typeof k === "string" && Object.hasOwn(DRIVERS, k);
}

export function checkDriverSettings(kind: HypervisorKind, s: DriverSettings): void {
  DRIVERS[kind].check?.(s);
}

export function createDriver(kind: HypervisorKind, s: DriverSettings): Hypervisor {
  return DRIVERS[kind].create(s);
}

export function createWarmer(kind: HypervisorKind, s: DriverSettings, o: { logger: Logger; env: NodeJS.ProcessEnv }): Warmer {
  return DRIVERS[kind].warmer(s, o);
}
