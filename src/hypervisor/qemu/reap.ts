// The QEMU driver's reaper: after its shim died, QEMU itself (the kernel kills
// it with the shim only where setpriv could ask), the taps mirrored into the
// pod's network namespace, the loopback redirect there and a warm VM's own
// directory, as the VM record names them. The guest's containers go with QEMU. Only the command builders
// are loaded: this runs in `delete`.
import fs from "node:fs";
import type { ReapContext, Reaper } from "../types";
import { killRecordedProcesses } from "../rundir";
import { unmountBelow } from "../../util/mounts";
import { complaint, firstLine } from "../command";
import { detachCommands, type PodNic } from "./tap-commands";
import { removeRedirectCommand, type LoopbackRecord } from "./loopback-commands";

export const reap: Reaper = (rec, scope, cx) => {
  // A pod's container lived in the guest: nothing of it is on the host apart from the VM's own.
  if (scope.containerId !== undefined) return;
  killRecordedProcesses(rec);
  if (rec.netns && fs.existsSync(rec.netns)) removeTaps(rec.netns, rec.nics ?? [], cx);
  if (rec.loopback && fs.existsSync(rec.loopback.netns)) removeRedirect(rec.loopback, cx);
  // A factory's warm VM kept its directory (its sockets, the shared directory the container root
  // filesystems were bound into) outside the run dir: binds off first, never removed through one.
  for (const d of rec.dirs ?? []) {
    if (unmountBelow(d, cx.warn)) fs.rmSync(d, { recursive: true, force: true });
    else cx.warn(`${d} still has mounts below it: left in place`);
  }
};

/** The taps a VM's pod network had, and the mirrors on the pod's veths: what the dead shim's teardown would have run. */
function removeTaps(netns: string, nics: Pick<PodNic, "hostIf" | "tap">[], cx: ReapContext): void {
  for (const args of detachCommands(nics)) {
    try {
      cx.run("nsenter", [`--net=${netns}`, "--", ...args]);
    } catch (e) {
      cx.warn(`${args.join(" ")} in ${netns}: ${firstLine(e)}`);
    }
  }
}

/**
 * The dead shim's loopback redirect: left in the pod's namespace, it would send every localhost
 * connection there to a port nobody listens on, for as long as containerd keeps the namespace.
 */
function removeRedirect(l: LoopbackRecord & { netns: string }, cx: ReapContext): void {
  const args = removeRedirectCommand(l);
  try {
    cx.run("nsenter", [`--net=${l.netns}`, "--", ...args]);
  } catch (e) {
    // Gone already (the shim got to remove it, or the record was written and the rule never added).
    if (!/does a matching rule exist|Bad rule/i.test(complaint(e))) cx.warn(`${args.join(" ")} in ${l.netns}: ${firstLine(e)}`);
  }
}
