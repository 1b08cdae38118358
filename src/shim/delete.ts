// `delete`: containerd runs it after every task deletion and after a shim
// dies. It cleans up this id only — a pod's shim may still serve others — and
// prints a DeleteResponse. A missing file is never an error here.
import fs from "node:fs";
import path from "node:path";
import type { ShimFlags } from "./flags";
import { socketAddress, socketPath } from "./address";
import { isServing, writeAll } from "./start";
import { stoppingMarker } from "./stopping";
import { recordedSocketDir } from "./start-v2";
import { placement, type PodPlacement } from "../pod/container-type";
import { readBundleSpec } from "./bundle";
import { validateId } from "./identifiers";
import { sandboxRunDir, readVmRecord } from "../hypervisor/rundir";
import type { VmRecord } from "../hypervisor/types";
import { reapVm } from "../hypervisor/reapers";
import { Writer } from "../proto/wire";
import { unmountAll } from "../pod/mount";
import { unmountBelow } from "../util/mounts";
import { processEnding } from "../util/proc";

const SIGKILL_STATUS = 137;

export function deleteAction(flags: ShimFlags): void {
  cleanup(flags).then(
    (pid) => {
      // As start does: fd 1 without process.stdout's streams, then no teardown.
      writeAll(1, deleteResponse(pid, SIGKILL_STATUS, new Date()));
      process.exit(0);
    },
    (e: Error) => {
      process.stderr.write(`shimlab delete: ${e.message}\n`);
      process.exitCode = 1;
    },
  );
}

/** containerd.task.v2.DeleteResponse{pid=1, exit_status=2, exited_at=3}, written by hand to keep this path light. */
export function deleteResponse(pid: number, status: number, at: Date): Buffer {
  const w = new Writer(32);
  if (pid) {
    w.uint32(8);
    w.uint32(pid);
  }
  w.uint32(16);
  w.uint32(status);
  const ms = at.getTime();
  const sec = Math.floor(ms / 1000);
  w.uint32(26);
  const a = w.fork();
  w.uint32(8);
  w.int64(sec);
  const nanos = (ms - sec * 1000) * 1e6;
  if (nanos) {
    w.uint32(16);
    w.int32(nanos);
  }
  w.ldelim(a);
  return Buffer.from(w.finish());
}

/** What `delete` undoes for flags.id, by itself when the shim is dead; the pid to report. */
export async function cleanup(flags: ShimFlags): Promise<number> {
  validateId("namespace", flags.namespace);
  validateId("id", flags.id);
  const bundle = flags.bundle || process.cwd();
  let where: PodPlacement;
  try {
    where = placement(flags.id, readBundleSpec(bundle).annotations);
  } catch {
    where = { type: "single_container", sandboxId: flags.id };
  }
  validateId("sandbox id", where.sandboxId);
  const runDir = sandboxRunDir(flags.namespace, where.sandboxId);
  const rec = readVmRecord(runDir);
  const sock = socketPath(socketAddress(flags.address, flags.namespace, where.sandboxId, recordedSocketDir(bundle)));
  // containerd runs `delete` when the shim's connection drops: a daemon killed with SIGKILL may still accept on its
  // socket while the kernel closes its files, so a connection alone does not make it alive (the bundle names it).
  const shimAlive = (await isServing(sock)) && !daemonEnding(bundle);
  const warn = (m: string) => process.stderr.write(m + "\n");

  if (!shimAlive) {
    // The shim is gone: whatever it ran for this id must go too, undone by the driver that made it.
    if (where.type === "pod_container") {
      if (rec) await reapVm(rec, { sandboxId: where.sandboxId, containerId: flags.id }, warn);
    } else {
      await reapSandbox(runDir, rec, where.sandboxId, sock, warn);
    }
  }
  // containerd removes the bundle after us: nothing may stay mounted in it.
  await unmountAll(path.join(bundle, "rootfs")).catch((e) => warn(`unmount rootfs: ${(e as Error).message}`));
  return rec?.pid ?? 0;
}

/**
 * What a dead shim left of its whole sandbox: the VM or agent (by the driver that made it), mounts
 * and run dir, socket and stopping marker. Also `start`'s, for a shim killed while it stopped.
 */
export async function reapSandbox(runDir: string, rec: VmRecord | null, sandboxId: string, sock: string, warn: (m: string) => void): Promise<void> {
  const reaped = !rec || (await reapVm(rec, { sandboxId }, warn));
  unmountBelow(runDir, warn);
  // A record no driver here could reap stays, run dir and all, for a shimlab that can.
  if (reaped) rmIfPresent(runDir);
  rmIfPresent(sock);
  // a daemon killed while it stopped its sandbox (src/shim/stopping.ts)
  rmIfPresent(stoppingMarker(sock));
}

/** Whether the daemon `start` recorded in bundle's shim.pid is gone or exiting; false when there is no record (a joined task's). */
function daemonEnding(bundle: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync(path.join(bundle, "shim.pid"), "utf8");
  } catch {
    return false;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 && processEnding(pid);
}

/** rmSync's force still throws and catches ENOENT inside (a stack captured each time); the usual delete finds nothing. */
function rmIfPresent(p: string): void {
  if (fs.lstatSync(p, { throwIfNoEntry: false })) fs.rmSync(p, { recursive: true, force: true });
}

