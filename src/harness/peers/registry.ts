// Every real peer the suite fetches or builds, by name: what `shimlab peers
// fetch` prepares before a run (CI does it once, then tests find them cached).
import path from "node:path";
import { fetchContainerd, resolveContainerd } from "./containerd";
import { INTEROP_PROGRAMS, interopKataVersion, interopPrograms, interopTtrpcVersion } from "./interop";
import { critestBinaries, crictlBinary, criToolsVersion } from "./cri-tools";
import { CRIO_RUNC_VERSION, crioPeer } from "./crio";
import { debianBusybox } from "../critest/busybox";
import { standinBinaries } from "../critest/standin-binaries";

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
    what: `test/interop's Go programs (${INTEROP_PROGRAMS.join(", ")}) on Go's containerd/ttrpc and Kata's Go agent client, from the Go module proxy`,
    fetch: async () => {
      const bins = Object.values(await interopPrograms());
      return `${bins.map((b) => path.basename(b)).join(", ")} (containerd/ttrpc ${interopTtrpcVersion()}, kata-containers/src/runtime ${interopKataVersion()}) in ${[...new Set(bins.map((b) => path.dirname(b)))].join(", ")}`;
    },
  },
  {
    name: "cri-o",
    what: "CRI-O (github.com/cri-o/cri-o's cmd/crio and pinns, built from the Go module proxy), Debian's conmon and runc built from the Go module proxy",
    fetch: async () => {
      const p = await crioPeer();
      return `CRI-O ${p.version} in ${p.crio}, pinns ${p.pinns}, conmon ${p.conmon}, runc ${CRIO_RUNC_VERSION} ${p.runc}`;
    },
  },
  {
    name: "crictl",
    what: "Kubernetes' CRI client (sigs.k8s.io/cri-tools/cmd/crictl), go install from the Go module proxy",
    fetch: async () => `crictl ${criToolsVersion()} in ${await crictlBinary()}`,
  },
  {
    name: "critest",
    what: "Kubernetes' CRI validation suite (go test -c of cri-tools' cmd/critest, pinned by test/peers/cri-tools) and the ginkgo CLI it runs nodes with",
    fetch: async () => {
      const b = await critestBinaries();
      return `critest ${b.version} in ${b.critest}, ginkgo in ${b.ginkgo}`;
    },
  },
  {
    name: "critest-images",
    what: "the inputs of critest's stand-in images: Debian's dynamic busybox (unpacked, not installed) and the gcc -static pause/nginx/nonewprivs",
    fetch: async () => {
      const [busybox, bins] = await Promise.all([debianBusybox(), standinBinaries()]);
      return `busybox ${busybox}, stand-ins in ${bins.pause.replace(/\/pause$/, "")}`;
    },
  },
];

function describe(p: { version: string; origin: string; binDir: string }): string {
  return `containerd ${p.version} (${p.origin}) in ${p.binDir}`;
}
