// containerd-shim-shimlab-fp-v2: shimlab's shim (start, daemon and delete
// unchanged) with the daemon's interfaces wrapped for fault injection, as
// containerd's containerd-shim-runc-fp-v1 wraps the runc shim. Scenarios,
// conformance mutants and the demo's fault runs use it; the production binary
// (containerd-shim-shimlab-v2) carries none of this.
import { main as shimMain } from "../shim/main";
import { FP_RUNTIME_TYPE, FP_SHIM_NAME } from "./binary";

export function main(argv: string[]): void {
  shimMain(argv, {
    name: FP_SHIM_NAME,
    runtimeType: FP_RUNTIME_TYPE,
    // `start` launches this file as the daemon, not the production shim's main
    daemonScript: __filename,
    decorations: () => (require("./decorations") as typeof import("./decorations")).faultDecorations(process.env),
  });
}

if (require.main === module) main(process.argv.slice(2));
