// The containerd versions the suite runs against, each with the runc shim of
// its own package and a runc of its own suite's version:
//   1.6  Debian 12's, installed (the system's /usr/bin)
//   1.7  trixie's containerd package, unpacked into the cache
//   2.1  sid's containerd package, unpacked into the cache
// SHIMLAB_CONTAINERD picks one for a run (a series, or a path to a containerd
// binary or its directory). trixie's and sid's runc packages need glibc 2.38,
// which Debian 12 lacks, so their runc is the same upstream version built from
// the Go module proxy with Debian's build tag (seccomp).
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { cached, peersCacheDir, safeName } from "./cache";
import { PrivateApt } from "./debian";
import { goInstall } from "./go";
import { which } from "../../util/which";

export const CONTAINERD_SERIES = ["1.6", "1.7", "2.1"] as const;
export type ContainerdSeries = (typeof CONTAINERD_SERIES)[number];

/** Where each fetched series comes from. */
const FETCHED: Record<Exclude<ContainerdSeries, "1.6">, { suite: string }> = {
  "1.7": { suite: "trixie" },
  "2.1": { suite: "sid" },
};

export interface ContainerdPeer {
  /** "1.6", "1.7", "2.1", or the major.minor of a containerd given by path. */
  series: string;
  major: number;
  minor: number;
  /** containerd's own version string (`containerd --version`). */
  version: string;
  /** Where it came from, for reports: "Debian bookworm (installed)", "Debian sid 2.1.9+ds1-5". */
  origin: string;
  /** A directory with containerd, ctr, containerd-shim-runc-v2 and runc: first on containerd's PATH. */
  binDir: string;
  containerd: string;
  ctr: string;
  runcShim: string;
  runc: string;
  /** The config file version this containerd reads (2 for 1.x, 3 for 2.x). */
  configVersion: 2 | 3;
}

function versionOf(containerd: string): { version: string; major: number; minor: number } {
  const out = execFileSync(containerd, ["--version"], { encoding: "utf8", timeout: 10_000 }).trim();
  // "containerd github.com/containerd/containerd/v2 2.1.9+unknown" / "containerd containerd.io 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
  const m = /\bv?(\d+)\.(\d+)\.(\d+)\S*/.exec(out.split(/\s+/).slice(2).join(" "));
  if (!m) throw new Error(`cannot read a version from \`${containerd} --version\`: ${JSON.stringify(out)}`);
  return { version: m[0].replace(/^v/, ""), major: Number(m[1]), minor: Number(m[2]) };
}

/** A bin directory of symlinks, so that containerd's PATH finds exactly this set's shim and runc. */
function linkBinDir(dir: string, bins: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(bins)) {
    const p = path.join(dir, name);
    try {
      if (fs.readlinkSync(p) === target) continue;
      fs.rmSync(p, { force: true });
    } catch {
      /* absent */
    }
    fs.symlinkSync(target, p);
  }
}

function peerFromBinDir(binDir: string, origin: string, series?: string): ContainerdPeer {
  const bin = (n: string, dirs = [binDir]) => {
    const p = which(n, dirs);
    if (!p) throw new Error(`${n} not found in ${dirs.join(":")}`);
    return p;
  };
  const containerd = bin("containerd");
  const v = versionOf(containerd);
  return {
    series: series ?? `${v.major}.${v.minor}`,
    ...v,
    origin,
    binDir,
    containerd,
    ctr: bin("ctr"),
    runcShim: bin("containerd-shim-runc-v2"),
    runc: which("runc", [binDir]) ?? bin("runc", ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
    configVersion: v.major >= 2 ? 3 : 2,
  };
}

function systemPeer(): ContainerdPeer {
  const sys = (n: string) => {
    const p = which(n, ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]);
    if (!p) throw new Error(`containerd 1.6 is Debian 12's own: ${n} is not installed (apt-get install containerd runc)`);
    return p;
  };
  const dir = path.join(peersCacheDir(), "containerd", "1.6-system", "bin");
  linkBinDir(dir, { containerd: sys("containerd"), ctr: sys("ctr"), "containerd-shim-runc-v2": sys("containerd-shim-runc-v2"), runc: sys("runc") });
  return peerFromBinDir(dir, "Debian bookworm (installed)", "1.6");
}

/** Fetches (or finds in the cache) a series' containerd and builds its runc. */
export async function fetchContainerd(series: Exclude<ContainerdSeries, "1.6">): Promise<ContainerdPeer> {
  const { suite } = FETCHED[series];
  const apt = new PrivateApt(suite);
  const pkg = await apt.fetch("containerd", `${series}.`);
  const runcVersion = await suiteRuncVersion(apt);
  const runc = await goInstall("github.com/opencontainers/runc", `v${runcVersion}`, { tags: ["seccomp"] });
  const dir = await cached(path.join(peersCacheDir(), "containerd", safeName(`${series}-${pkg.version}-runc${runcVersion}`)), (tmp) => {
    const usr = path.join(pkg.dir, "usr", "bin");
    linkBinDir(path.join(tmp, "bin"), {
      containerd: path.join(usr, "containerd"),
      ctr: path.join(usr, "ctr"),
      "containerd-shim-runc-v2": path.join(usr, "containerd-shim-runc-v2"),
      runc,
    });
  });
  return peerFromBinDir(path.join(dir, "bin"), `Debian ${suite} ${pkg.version}, runc ${runcVersion} (Go module proxy)`, series);
}

/** The upstream version of the suite's runc package (1.3.6+ds1-1 → 1.3.6), remembered beside the cache. */
async function suiteRuncVersion(apt: PrivateApt): Promise<string> {
  const memo = path.join(apt.root, "runc-version");
  if (fs.existsSync(memo)) return fs.readFileSync(memo, "utf8").trim();
  const [newest] = await apt.versions("runc");
  const m = newest && /^(?:\d+:)?(\d+\.\d+\.\d+)/.exec(newest);
  if (!m) throw new Error(`Debian ${apt.suite} has no runc package`);
  fs.writeFileSync(memo, m[1] + "\n");
  return m[1];
}

/**
 * The containerd a run uses: SHIMLAB_CONTAINERD (1.6, 1.7, 2.1, or a path to a
 * containerd binary or to a directory holding containerd, ctr and the runc
 * shim); Debian 12's 1.6 when unset.
 */
export async function resolveContainerd(spec = process.env.SHIMLAB_CONTAINERD): Promise<ContainerdPeer> {
  if (!spec || spec === "1.6") return systemPeer();
  if (spec === "1.7" || spec === "2.1") return fetchContainerd(spec);
  if (spec.includes("/")) {
    const st = fs.statSync(spec, { throwIfNoEntry: false });
    if (!st) throw new Error(`SHIMLAB_CONTAINERD=${spec}: no such file or directory`);
    return peerFromBinDir(st.isDirectory() ? spec : path.dirname(spec), spec);
  }
  throw new Error(`SHIMLAB_CONTAINERD=${JSON.stringify(spec)}: want one of ${CONTAINERD_SERIES.join(", ")}, or a path to a containerd binary or its directory`);
}

let current: Promise<ContainerdPeer> | null = null;
/** resolveContainerd() once per process. */
export function currentContainerd(): Promise<ContainerdPeer> {
  current ??= resolveContainerd();
  return current;
}
