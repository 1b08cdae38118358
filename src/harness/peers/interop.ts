// The suite's own Go programs for ttrpc interop (test/interop): Go's ttrpc
// client against a shim (task-client), a Go ttrpc server for shimlab's client
// (echo-server), the Go client's State benchmark (state-bench), and Kata's own
// Go agent client against the mock agent (kata-agent-client). Built by
// goBuild, so cached by their sources and rebuilt when one changes.
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../containerd";
import { goBuild } from "./go";

export const INTEROP_MODULE = path.join(REPO_ROOT, "test", "interop");
export const INTEROP_PROGRAMS = ["task-client", "echo-server", "state-bench", "kata-agent-client"] as const;
export type InteropProgram = (typeof INTEROP_PROGRAMS)[number];

/** One call's outcome as the Go client programs (task-client, kata-agent-client) print it in their JSON report. */
export interface InteropOutcome {
  code: string;
  message?: string;
  source: "server" | "client" | "transport";
  ms: number;
  value?: Record<string, unknown> | null;
}

/** One program's binary, built if its sources changed. */
export function interopProgram(name: InteropProgram): Promise<string> {
  return goBuild(INTEROP_MODULE, { pkg: `./cmd/${name}`, output: name });
}

/** Every program, built one after the other (two cores: parallel `go build`s only fight). */
export async function interopPrograms(): Promise<Record<InteropProgram, string>> {
  const out = {} as Record<InteropProgram, string>;
  for (const n of INTEROP_PROGRAMS) out[n] = await interopProgram(n);
  return out;
}

/** The version test/interop/go.mod asks for of a module it requires. */
function interopModuleVersion(module: string): string {
  const mod = fs.readFileSync(path.join(INTEROP_MODULE, "go.mod"), "utf8");
  const esc = module.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  return new RegExp(`^\\s*${esc} (v\\S+)`, "m").exec(mod)?.[1] ?? "unknown";
}

/** The github.com/containerd/ttrpc version test/interop/go.mod asks for. */
export function interopTtrpcVersion(): string {
  return interopModuleVersion("github.com/containerd/ttrpc");
}

/** Kata's Go runtime module (its agent client and protocol types) test/interop/go.mod pins. */
export const KATA_RUNTIME_MODULE = "github.com/kata-containers/kata-containers/src/runtime";
export function interopKataVersion(): string {
  return interopModuleVersion(KATA_RUNTIME_MODULE);
}
