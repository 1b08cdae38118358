// npm run test:matrix: the suites that meet a real containerd, run again on
// each containerd the suite knows besides Debian 12's 1.6 (which `npm test`
// uses): trixie's 1.7 and sid's 2.1, fetched by `shimlab peers fetch`.
// SHIMLAB_MATRIX="2.1" (space- or comma-separated) picks versions; extra
// arguments go to vitest (e.g. a file filter). JUnit per version goes to
// test-artifacts/matrix-<version>.junit.xml.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Every suite that starts a real containerd: ctr flows, pods by annotation, CRI (crictl too), QEMU pods, install, and the emulator held to the real one. critest is not here: its file runs 1.6 and 2.1 itself. */
export const MATRIX_FILES = [
  "ctr-basic",
  "ctr-parity",
  "ctr-pod",
  "restart",
  "crash",
  "install",
  "cri",
  "cri-calls",
  "cri-stream",
  "crictl",
  "cri-network",
  "qemu-cri",
  "emulator-fidelity",
].map((f) => `test/integration/${f}.test.ts`);

const versions = (process.env.SHIMLAB_MATRIX ?? "1.7 2.1").split(/[\s,]+/).filter(Boolean);
const extra = process.argv.slice(2);
fs.mkdirSync(path.join(root, "test-artifacts"), { recursive: true });
const failed = [];
for (const v of versions) {
  process.stdout.write(`\n=== containerd ${v} ===\n`);
  const t0 = Date.now();
  const r = spawnSync(
    "npx",
    ["vitest", "run", ...MATRIX_FILES, "--reporter=default", "--reporter=junit", `--outputFile.junit=test-artifacts/matrix-${v}.junit.xml`, ...extra],
    { cwd: root, stdio: "inherit", env: { ...process.env, SHIMLAB_CONTAINERD: v } },
  );
  process.stdout.write(`=== containerd ${v}: ${r.status === 0 ? "passed" : "FAILED"} in ${((Date.now() - t0) / 1000).toFixed(0)} s ===\n`);
  if (r.status !== 0) failed.push(v);
}
if (failed.length) {
  process.stderr.write(`test:matrix failed on containerd ${failed.join(", ")}\n`);
  process.exit(1);
}
