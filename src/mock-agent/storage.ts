// Sandbox storages in a guest: the shared filesystem (9p or virtio-fs, tag
// kataShared) and tmpfs mounts that CreateSandbox asks for.
import fs from "node:fs";
import type { Storage } from "../gen/grpc";
import { invalidArgument } from "../errdefs";
import type { Logger } from "../util/logger";
import { mustRun } from "./runtime/exec";
import { hasNative } from "../native";
import { mountArgs, mountCall, mountDirect } from "../util/mount-call";
import type { Reaper } from "./reaper";

const DRIVERS = new Set(["9p", "virtio-fs", "ephemeral", "local"]);

/** reaper: the agent's, when it has one, so it does not take mount's exit status from libuv. */
export async function mountStorage(s: Storage, log: Logger, reaper: Reaper | null = null): Promise<void> {
  if (!DRIVERS.has(s.driver)) throw invalidArgument(`storage driver ${JSON.stringify(s.driver)} is not supported (want ${[...DRIVERS].join(", ")})`);
  if (!s.mountPoint.startsWith("/")) throw invalidArgument(`storage mount point ${JSON.stringify(s.mountPoint)} is not absolute`);
  fs.mkdirSync(s.mountPoint, { recursive: true });
  if (s.driver === "local") return;
  const fstype = s.fstype || (s.driver === "9p" ? "9p" : s.driver === "virtio-fs" ? "virtiofs" : "tmpfs");
  const m = { type: fstype, source: s.source, options: s.options };
  // mount(2) from this process where it can: mount(8) is a fork and an exec, dear under TCG
  const call = hasNative() ? mountCall(m) : null;
  if (call) mountDirect(m, s.mountPoint, call);
  else await mustRun(reaper, "mount", mountArgs(m, s.mountPoint));
  log.info("storage mounted", { driver: s.driver, source: s.source, mountPoint: s.mountPoint });
}
