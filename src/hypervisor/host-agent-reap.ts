// The host agent's reaper (hypervisor = "none"): after its shim died, the
// agent may be gone too (its lifeline is the shim), but its containers are
// runc containers on the host, in the runc root the VM record names, with
// cgroups under the sandbox's. Nothing kills them as a VM's death would.
import fs from "node:fs";
import type { Reaper } from "./types";
import { killRecordedProcesses } from "./rundir";
import { forceDeleteRunc, listRunc } from "./orphans";
import { cgroupParent, removeCgroupTree } from "../util/cgroup";

export const reap: Reaper = (rec, scope, cx) => {
  const one = scope.containerId;
  if (rec.runcRoot && fs.existsSync(rec.runcRoot)) {
    // One container of a pod whose other containers (and agent) may live on: that one only.
    for (const id of one !== undefined ? [one] : listRunc(rec.runcRoot, cx.run)) {
      forceDeleteRunc(rec.runcRoot, id, cx.warn, cx.run);
      if (one !== undefined) removeCgroupTree(`${cgroupParent()}/${scope.sandboxId}/${id}`);
    }
  }
  if (one !== undefined) return;
  killRecordedProcesses(rec);
  // A host agent killed before its own teardown leaves its sandbox's cgroups.
  if (rec.runcRoot) removeCgroupTree(`${cgroupParent()}/${scope.sandboxId}`);
  for (const d of rec.dirs ?? []) fs.rmSync(d, { recursive: true, force: true });
};
