// containerd-shim-shimlab-v2: the one entry point containerd executes, three
// times per task (start, the daemon, delete). Each action loads only its own
// module, so start and delete stay cheap.
import { parseFlags, FlagError, type ShimFlags } from "./flags";
import type { DaemonDecorations } from "./decorations";

export const VERSION = "0.1.0";
export const RUNTIME_TYPE = "io.containerd.shimlab.v2";

/**
 * Which binary runs: this one, or another built on it (the failpoint shim,
 * src/fp-shim) that containerd knows by its own name and runtime type, whose
 * `start` must launch its own daemon, and whose daemon wraps its interfaces.
 */
export interface ShimEntry {
  name: string;
  runtimeType: string;
  /** The script `start` launches as the daemon; this shim's own when absent. */
  daemonScript?: string;
  /** The daemon's wrappers, loaded by the daemon only. */
  decorations?: () => DaemonDecorations;
}

const PRODUCTION: ShimEntry = { name: "containerd-shim-shimlab-v2", runtimeType: RUNTIME_TYPE };

export function main(argv: string[], entry: ShimEntry = PRODUCTION): void {
  // containerd hands its environment down; Node would parse a CA bundle at
  // every start of every child we spawn if this stayed set.
  delete process.env.NODE_EXTRA_CA_CERTS;
  // a factory's parked daemon (src/shim/park.ts): a daemon waiting for the `start` that takes it
  if (argv[0] === "-park" && entry === PRODUCTION) {
    void require("./park").park(argv.slice(1));
    return;
  }
  let flags: ShimFlags;
  try {
    flags = parseFlags(argv);
  } catch (e) {
    process.stderr.write(`${(e as FlagError).message}\n`);
    process.exit(2);
  }
  if (flags.version) {
    process.stdout.write(`${entry.name}:\n  Runtime: ${entry.runtimeType}\n  Version: ${VERSION}\n  Node: ${process.version}\n`);
    return;
  }
  // A daemon whose bundle is gone before it runs: containerd gave up on it (1.7 refuses a version 3
  // bootstrap result and removes the bundle), so nobody will connect. It would die on its first
  // process.cwd(), leaving the socket `start` bound for it; that socket is its own to remove.
  if (flags.action === "" && !bundleExists()) {
    if (flags.socket) require("node:fs").rmSync(flags.socket, { force: true });
    process.stderr.write(`${entry.name}: the bundle is gone; nothing to serve\n`);
    process.exit(1);
  }
  // Tracing (SHIMLAB_TRACE) is loaded only when asked for: otherwise nothing is wrapped.
  if (process.env.SHIMLAB_TRACE) require("../trace/shim").traceShimProcess(flags);
  switch (flags.action) {
    case "start":
      require("./start").start(flags, entry.daemonScript);
      return;
    case "delete":
      require("./delete").deleteAction(flags);
      return;
    case "":
      // the early agent first: it boots while the daemon's own modules load
      require("./daemon").runDaemon(flags, require("./early-agent").bootDaemon(flags), entry.decorations?.());
      return;
    default:
      process.stderr.write(`${entry.name}: unknown action ${JSON.stringify(flags.action)} (want start, delete, or none for the daemon)\n`);
      process.exit(2);
  }
}

/** Whether this process's working directory (a daemon's bundle) still exists. */
function bundleExists(): boolean {
  try {
    process.cwd();
    return true;
  } catch {
    return false;
  }
}

// `start` re-launches this file directly as the daemon.
if (require.main === module) main(process.argv.slice(2));
