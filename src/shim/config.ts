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
//   machine = "q35"                # keys: src/hypervisor/qemu/config.ts
import fs from "node:fs";
import { parse } from "smol-toml";
import { invalidArgument } from "../ttrpc/status";
import type { Hypervisor } from "../hypervisor/types";
import { HostAgentHypervisor } from "../hypervisor/host-agent";
import { parseQemuConfig } from "../hypervisor/qemu/config";

export interface ShimConfig {
  /** Where it came from: a path, or "defaults". */
  source: string;
  hypervisorKind: "none" | "qemu";
  agentRuntime: "auto" | "runc" | "host";
  dialTimeoutMs: number;
  debug: boolean;
  qemu: Record<string, unknown>;
  /** Environment the shim runs with (containerd's). */
  env: NodeJS.ProcessEnv;
  hypervisor(): Hypervisor;
}

export const CONFIG_ENV = "SHIMLAB_CONFIG";

function build(raw: Record<string, unknown>, source: string, env: NodeJS.ProcessEnv): ShimConfig {
  const where = (k: string) => `${source}: ${k}`;
  const hv = raw.hypervisor ?? "none";
  if (hv !== "none" && hv !== "qemu") throw invalidArgument(`${where("hypervisor")} = ${JSON.stringify(hv)}: want "none" or "qemu"`);
  const agent = (raw.agent ?? {}) as Record<string, unknown>;
  if (typeof agent !== "object") throw invalidArgument(`${where("[agent]")} must be a table`);
  const rt = env.SHIMLAB_AGENT_RUNTIME ?? agent.runtime ?? "auto";
  if (rt !== "auto" && rt !== "runc" && rt !== "host") throw invalidArgument(`${where("agent.runtime")} = ${JSON.stringify(rt)}: want "auto", "runc" or "host"`);
  const dial = agent.dial_timeout_ms ?? 45_000;
  if (typeof dial !== "number" || dial <= 0) throw invalidArgument(`${where("agent.dial_timeout_ms")} must be a positive number`);
  const qemu = (raw.qemu ?? {}) as Record<string, unknown>;
  const debug = raw.debug === true || env.SHIMLAB_DEBUG === "1";
  // A bad [qemu] table is refused when the file is read, not when the first VM boots.
  if (hv === "qemu") parseQemuConfig(qemu, source);
  let none: HostAgentHypervisor | null = null;
  const cfg: ShimConfig = {
    source,
    hypervisorKind: hv,
    agentRuntime: rt,
    dialTimeoutMs: dial,
    debug,
    qemu,
    env,
    hypervisor() {
      if (hv === "qemu") {
        // Loaded only when asked for: the default path never pays for it.
        const { QemuHypervisor } = require("../hypervisor/qemu") as typeof import("../hypervisor/qemu");
        return new QemuHypervisor({ ...QemuHypervisor.configFrom(qemu, source), debug: debug || qemu.debug === true });
      }
      // one per configuration, so that an agent booted ahead (prestart) is the one Create finds
      return (none ??= new HostAgentHypervisor({ agentRuntime: rt, debug }));
    },
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
    raw = parse(text) as Record<string, unknown>;
  } catch (e) {
    throw invalidArgument(`shimlab config ${file} is not valid TOML: ${(e as Error).message}`);
  }
  return build(raw, file, env);
}
