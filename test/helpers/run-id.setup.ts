// vitest's globalSetup: one run id for the whole run, made in the main
// process before any worker forks, so every worker, and every containerd,
// shim and agent they start, inherits the same one (src/harness/leaks.ts).
import { runId } from "../../src/harness/run-id";

export default function setup(): void {
  runId();
}
