// What the integration tests need from the machine. In CI (SHIMLAB_REQUIRE_ALL=1)
// a missing prerequisite fails the run instead of skipping tests quietly.
import path from "node:path";
import { execFileSync } from "node:child_process";
import { findBusybox } from "../../src/harness/rootfs";
import { busyboxRootfs as libraryBusyboxRootfs } from "../../src/testing/fixtures";
import { goBinary } from "../../src/harness/peers/go";

export const REQUIRE_ALL = process.env.SHIMLAB_REQUIRE_ALL === "1";

export function have(bin: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export const isRoot = process.getuid?.() === 0;

/** Go where the peers' builds look for it: PATH, then /usr/local/go/bin and /usr/lib/go/bin. */
export function haveGo(): boolean {
  try {
    goBinary();
    return true;
  } catch {
    return false;
  }
}

/** Returns a reason to skip, or null; throws in CI where nothing may be skipped. */
export function missing(...needs: string[]): string | null {
  const lacking: string[] = [];
  for (const n of needs) {
    if (n === "root" ? !isRoot : n === "busybox" ? !findBusybox() : n === "go" ? !haveGo() : !have(n)) lacking.push(n);
  }
  if (!lacking.length) return null;
  const why = `needs ${lacking.join(", ")}`;
  if (REQUIRE_ALL) throw new Error(`SHIMLAB_REQUIRE_ALL=1 but this machine lacks: ${lacking.join(", ")}`);
  return why;
}

let rootfsDir: string | null = null;
/** One busybox rootfs shared by the tests of a run (read-only for them). */
export function busyboxRootfs(): string {
  if (rootfsDir) return rootfsDir;
  rootfsDir = libraryBusyboxRootfs();
  return rootfsDir;
}

export const ARTIFACTS = path.resolve(__dirname, "..", "..", "test-artifacts");
