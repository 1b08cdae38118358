// CRI-O as a peer: the other CRI runtime that drives shim v2 binaries
// (runtime_type = "vm", as it drives containerd-shim-kata-v2). Debian has no
// cri-o package, so it is built from the Go module proxy as its Makefile
// builds it: cmd/crio with the build tags its hack/*_tag.sh scripts pick on a
// machine with libseccomp and no btrfs, gpgme, SELinux or AppArmor headers
// (containers_image_openpgp: the pure-Go signature code, so no libgpgme), and
// its pinns helper (C, `make -C pinns`, static). conmon, which runs each OCI
// container for it, is Debian's package; the OCI runtime is runc of the
// version CRI-O 1.34's own static bundle ships (1.3), built from the Go module
// proxy: Debian 12's crun (1.8) rejects the runtime-spec 1.2 CRI-O writes
// ("unknown version specified"), and its runc is 1.1.
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { cached, peersCacheDir, safeName } from "./cache";
import { goDownload, goBuildIn, goInstall, goVersion } from "./go";
import { which } from "../../util/which";

const run = promisify(execFile);

export const CRIO_MODULE = "github.com/cri-o/cri-o";
/** The release built and run. 1.34 is the newest line the module proxy serves here. */
export const CRIO_VERSION = "v1.34.0";
/** The runc CRI-O runs OCI containers with (its bundle's series). */
export const CRIO_RUNC_VERSION = "v1.3.6";
/** As hack/{openpgp,seccomp,btrfs_installed}_tag.sh decide here; ostree is always stubbed. */
export const CRIO_BUILD_TAGS = ["containers_image_ostree_stub", "containers_image_openpgp", "seccomp", "exclude_graphdriver_btrfs"];

export interface CrioPeer {
  version: string;
  crio: string;
  pinns: string;
  conmon: string;
  /** The OCI runtime of CRI-O's default handler, runc. */
  runc: string;
}

/** What CRI-O needs on this machine that is not built here, or null. */
export function crioMissing(): string | null {
  for (const [bin, pkg] of [["conmon", "conmon"], ["gcc", "gcc"], ["make", "make"]]) if (!which(bin)) return `${bin} (apt-get install ${pkg})`;
  if (!fs.existsSync("/usr/include/seccomp.h")) return "libseccomp headers (apt-get install libseccomp-dev)";
  if (!fs.existsSync("/usr/lib/x86_64-linux-gnu/libc.a")) return "a static libc for pinns (apt-get install libc6-dev)";
  return null;
}

export async function crioPeer(version = CRIO_VERSION): Promise<CrioPeer> {
  const missing = crioMissing();
  if (missing) throw new Error(`CRI-O ${version} needs ${missing}`);
  const key = safeName(`${CRIO_MODULE}@${version}+${CRIO_BUILD_TAGS.join(",")}-${await goVersion()}`);
  const dir = await cached(path.join(peersCacheDir(), "crio", key), async (tmp) => {
    // The module as the proxy serves it (read-only in Go's module cache), copied to build in.
    const src = path.join(tmp, "src");
    fs.cpSync(await goDownload(CRIO_MODULE, version), src, { recursive: true });
    fs.chmodSync(src, 0o755);
    for (const e of fs.readdirSync(src, { recursive: true, withFileTypes: true })) fs.chmodSync(path.join(e.parentPath, e.name), e.isDirectory() ? 0o755 : 0o644);
    fs.mkdirSync(path.join(tmp, "bin"));
    await goBuildIn(src, ["build", "-tags", CRIO_BUILD_TAGS.join(" "), "-ldflags", "-s -w", "-o", path.join(tmp, "bin", "crio"), "./cmd/crio"]);
    await run("make", ["-C", path.join(src, "pinns")], { maxBuffer: 16 << 20 }).catch((e) => {
      throw new Error(`make -C pinns (CRI-O ${version}) failed:\n${String(e.stderr || e.message).trim()}`);
    });
    fs.renameSync(path.join(src, "bin", "pinns"), path.join(tmp, "bin", "pinns"));
    fs.rmSync(src, { recursive: true, force: true });
  });
  const runc = await goInstall("github.com/opencontainers/runc", CRIO_RUNC_VERSION, { tags: ["seccomp"] });
  return { version, crio: path.join(dir, "bin", "crio"), pinns: path.join(dir, "bin", "pinns"), conmon: which("conmon")!, runc };
}
