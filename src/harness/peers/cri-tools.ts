// Kubernetes' cri-tools as peers: crictl (the CRI client operators use) by
// `go install`, and critest (the CRI validation suite) built as upstream's
// Makefile builds it, the test binary of its cmd/critest package, from the
// scratch module test/peers/cri-tools, whose go.mod pins the version. critest
// runs ginkgo nodes in parallel through the ginkgo CLI, built from the same
// module so that it matches the ginkgo critest links.
import fs from "node:fs";
import path from "node:path";
import { goBuild, goInstall } from "./go";

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
export const CRI_TOOLS_MODULE_DIR = path.join(REPO_ROOT, "test", "peers", "cri-tools");
const CRI_TOOLS = "sigs.k8s.io/cri-tools";

/** The cri-tools version test/peers/cri-tools/go.mod requires ("v1.37.0"): the one place it is written. */
export function criToolsVersion(moduleDir = CRI_TOOLS_MODULE_DIR): string {
  const mod = fs.readFileSync(path.join(moduleDir, "go.mod"), "utf8");
  const m = new RegExp(`^\\s*(?:require\\s+)?${CRI_TOOLS.replace(/\./g, "\\.")}\\s+(v\\S+)`, "m").exec(mod);
  if (!m) throw new Error(`${moduleDir}/go.mod does not require ${CRI_TOOLS}`);
  return m[1];
}

/** What upstream's Makefile stamps in, so that `critest -version` and `crictl --version` say it. */
function versionLdflags(version: string): string {
  return `-X ${CRI_TOOLS}/pkg/version.Version=${version.replace(/^v/, "")}`;
}

export async function crictlBinary(): Promise<string> {
  const version = criToolsVersion();
  return goInstall(`${CRI_TOOLS}/cmd/crictl`, version, { ldflags: versionLdflags(version) });
}

export interface CritestBinaries {
  critest: string;
  /** The ginkgo CLI critest runs for -parallel > 1 (it must be on critest's PATH). */
  ginkgo: string;
  version: string;
}

export async function critestBinaries(): Promise<CritestBinaries> {
  const version = criToolsVersion();
  // One after the other: two Go builds at once only fight over two cores.
  const critest = await goBuild(CRI_TOOLS_MODULE_DIR, { pkg: `${CRI_TOOLS}/cmd/critest`, output: "critest", test: true, ldflags: versionLdflags(version) });
  const ginkgo = await goBuild(CRI_TOOLS_MODULE_DIR, { pkg: "github.com/onsi/ginkgo/v2/ginkgo", output: "ginkgo" });
  return { critest, ginkgo, version };
}
