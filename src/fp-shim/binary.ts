// The failpoint shim as containerd knows it: containerd makes the binary's
// name from the runtime type (io.containerd.shimlab-fp.v2 →
// containerd-shim-shimlab-fp-v2) and finds it on its PATH, as it finds
// containerd-shim-runc-fp-v1 for its own failpoint tests.
import { EVENT_FAULTS_ENV } from "../faults/event-faults";
import { MUTANTS_ENV } from "../faults/mutants";
import { AGENT_LINK_FAULTS_ENV } from "../faults/agent-link";

export const FP_SHIM_NAME = "containerd-shim-shimlab-fp-v2";
export const FP_RUNTIME_TYPE = "io.containerd.shimlab-fp.v2";

/** The variables only the failpoint shim reads (the production shim ignores them). */
export const FP_SHIM_ENV = [EVENT_FAULTS_ENV, MUTANTS_ENV, AGENT_LINK_FAULTS_ENV] as const;

/** Whether env asks for faults only the failpoint shim can inject. */
export function asksForShimFaults(env: NodeJS.ProcessEnv): boolean {
  return FP_SHIM_ENV.some((k) => !!env[k]);
}
