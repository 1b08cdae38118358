// The identity of one run of the harness (a vitest run, a `shimlab scenario
// run`, a `shimlab conformance`), carried by every process the run starts so
// that its leak checks can tell its processes from another run's on the same
// machine (src/harness/leaks.ts says how they use it).
//
// It travels as plain environment: the harness starts containerd, shims and
// peers with its own environment, containerd (1.x and 2.x) and CRI-O pass
// theirs to every shim binary, the shim to its daemon, the daemon to the mock
// agent and QEMU. Nothing in the shim or the agent reads it.
import { randomUUID } from "node:crypto";

export const RUN_ID_VAR = "SHIMLAB_RUN_ID";

/**
 * This run's id. An inherited one is kept: a `shimlab scenario run` started
 * by a test belongs to that test's run, and what it leaves is that test's
 * leak. Otherwise one is made and put into process.env, so that every process
 * started from here on inherits it.
 */
export function runId(env: NodeJS.ProcessEnv = process.env): string {
  const id = env[RUN_ID_VAR];
  if (id) return id;
  return (env[RUN_ID_VAR] = randomUUID());
}

// Made as soon as anything that checks for leaks is loaded, before it can
// start a process: a process started without the id would be invisible to
// the checks, and a leak nobody sees passes.
runId();
