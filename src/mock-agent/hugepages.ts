// Huge page limits a guest can honour. The kubelet gives every container a
// hugetlb limit (0 when it asked for none) for each page size the *node*
// has, and runc fails on a size whose hugetlb.<size>.max the guest's cgroup
// lacks (a 1 GB size the VM's CPU model or kernel does not offer). Kata's
// agent drops those limits with a warning (rustjail cgroups:
// set_hugepages_resources); so does this one. Nothing can be allocated in a
// size the guest lacks, so the dropped limit is never what stops a container.
import fs from "node:fs";
import type { OciLinuxResources } from "../oci/spec";

type HugepageLimit = NonNullable<OciLinuxResources["hugepageLimits"]>[number];

const UNITS = ["KB", "MB", "GB", "TB"];

/** runc's name of a page size (libcontainer's HugePageSizes: 2048 kB is "2MB", 1048576 kB "1GB"). */
export function pageSizeName(kB: number): string {
  let v = kB;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v}${UNITS[u]}`;
}

/** The page sizes this kernel has, by runc's names (none without CONFIG_HUGETLBFS). */
export function hugepageSizes(dir = "/sys/kernel/mm/hugepages"): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const m = /^hugepages-(\d+)kB$/.exec(n);
    return m ? [pageSizeName(Number(m[1]))] : [];
  });
}

/** The limits split into those of sizes the guest has and those it cannot honour. */
export function splitHugepageLimits(limits: HugepageLimit[], sizes: string[]): { kept: HugepageLimit[]; dropped: HugepageLimit[] } {
  const have = new Set(sizes);
  return { kept: limits.filter((l) => have.has(l.pageSize)), dropped: limits.filter((l) => !have.has(l.pageSize)) };
}
