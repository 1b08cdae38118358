// Every real peer the suite fetches or builds, by name: what `shimlab peers
// fetch` prepares before a run (CI does it once, then tests find them cached).
import path from "node:path";
import { fetchContainerd, resolveContainerd } from "./containerd";
import { INTEROP_PROGRAMS, interopPrograms, interopTtrpcVersion } from "./interop";

export interface PeerEntry {
  name: string;
  what: string;
  /** Fetches or builds it (cached); returns a line saying what and where. */
  fetch(): Promise<string>;
}

export const PEERS: PeerEntry[] = [
  {
    name: "containerd-1.6",
    what: "Debian 12's containerd, runc shim and runc (installed with apt)",
    fetch: async () => describe(await resolveContainerd("1.6")),
  },
  {
    name: "containerd-1.7",
    what: "trixie's containerd package (unpacked, not installed) and its suite's runc, built from the Go module proxy",
    fetch: async () => describe(await fetchContainerd("1.7")),
  },
  {
    name: "containerd-2.1",
    what: "sid's containerd package (unpacked, not installed) and its suite's runc, built from the Go module proxy",
    fetch: async () => describe(await fetchContainerd("2.1")),
  },
  {
    name: "ttrpc-interop",
    what: `test/interop's Go programs (${INTEROP_PROGRAMS.join(", ")}) on Go's containerd/ttrpc, from the Go module proxy`,
    fetch: async () => {
      const bins = Object.values(await interopPrograms());
      return `${bins.map((b) => path.basename(b)).join(", ")} (containerd/ttrpc ${interopTtrpcVersion()}) in ${[...new Set(bins.map((b) => path.dirname(b)))].join(", ")}`;
    },
  },
];

function describe(p: { version: string; origin: string; binDir: string }): string {
  return `containerd ${p.version} (${p.origin}) in ${p.binDir}`;
}
