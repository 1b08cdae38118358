// The first thing the shim daemon does, before it loads the Task service and
// the codecs: make its logger and configuration and, where the driver can (the
// host agent's), boot the agent for the sandbox this shim will serve. The agent
// then comes up while the daemon loads and containerd connects and sends
// Create, instead of after Create (Kata's VM factory does the same for VMs). A
// pod's later containers join an existing sandbox and boot nothing here.
import path from "node:path";
import type { ShimFlags } from "./flags";
import { FdLogger, openLogFd, type Logger } from "../util/logger";
import { loadConfig, type ShimConfig } from "./config";
import { readBundleSpec } from "./bundle";
import { sandboxRunDir } from "../hypervisor/rundir";
import { placement } from "../pod/container-type";
import { validateId } from "./identifiers";

export interface DaemonBoot {
  logger: Logger;
  config: ShimConfig;
  /**
   * Why the configuration `start` handed over (SHIMLAB_CONFIG) would not load: the daemon runs on
   * the defaults, which a Task API Create with a ConfigPath of its own replaces, but CreateSandbox
   * has no other source and refuses with it.
   */
  configError?: Error;
}

/** loaded: the configuration when the caller has read it already (a parked daemon, src/shim/park.ts). */
export function bootDaemon(flags: ShimFlags, bundle = process.cwd(), loaded?: { config: ShimConfig }): DaemonBoot {
  const logger: Logger = new FdLogger(openLogFd(path.join(bundle, "log")), flags.debug ? "debug" : "info", {
    runtime: "io.containerd.shimlab.v2",
    namespace: flags.namespace,
    id: flags.id,
    pid: process.pid,
  });
  let config: ShimConfig;
  let configError: Error | undefined;
  try {
    config = loaded?.config ?? loadConfig(undefined, process.env);
  } catch (e) {
    configError = e as Error;
    logger.error("bad configuration; using defaults", { error: configError.message });
    config = loadConfig("", { ...process.env, SHIMLAB_CONFIG: "" });
  }
  try {
    const where = placement(flags.id, readBundleSpec(bundle).annotations);
    if (where.type !== "pod_container") {
      validateId("sandbox id", where.sandboxId);
      config.hypervisor().prestart?.({ sandboxId: where.sandboxId, namespace: flags.namespace, runDir: sandboxRunDir(flags.namespace, where.sandboxId), logger });
    }
  } catch {
    // a bad bundle or id: Create refuses it with the reason, and boots nothing
  }
  return { logger, config, configError };
}
