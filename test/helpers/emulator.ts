// An emulator for a describe block: started before its tests with a busybox
// rootfs at hand, closed after them, and checked for leaks after each test.
import fs from "node:fs";
import path from "node:path";
import { beforeAll, afterAll, afterEach } from "vitest";
import type { ShimTask } from "../../src/harness/shim-runner";
import { ContainerdEmulator, type EmulatorOptions } from "../../src/harness/emulator";
import { SHIM_BINARY } from "../../src/harness/containerd";
import { removeCgroupDirs } from "../../src/util/cgroup";
import { busyboxRootfs } from "./env";
import { expectNoLeaks } from "./leaks";

export interface EmulatorFixture {
  emu: ContainerdEmulator;
  rootfs: string;
}

export function useEmulator(o: Omit<EmulatorOptions, "binary"> & { binary?: string }): EmulatorFixture {
  const fx = {} as EmulatorFixture;
  beforeAll(async () => {
    fx.rootfs = busyboxRootfs();
    fx.emu = new ContainerdEmulator({ binary: SHIM_BINARY, ...o });
    await fx.emu.start();
  });
  afterAll(async () => {
    if (!fx.emu) return;
    await fx.emu.close();
    removeCgroupDirs(fx.emu.cgroupParent);
  });
  afterEach(async () => {
    await expectNoLeaks([fx.emu.address], [fx.emu.dir], fx.emu.cgroupParent);
  });
  return fx;
}

/** How long the calls of withTask may take (a VM's Create boots it, when no warm one is taken). */
export interface TaskTimeouts {
  createMs?: number;
  startMs?: number;
  waitMs?: number;
}

/**
 * A one-task sandbox on fx's emulator: its shim, Create and Start, then body (with the shim
 * daemon's pid), then containerd's teardown whatever the body did: Kill, Wait, Delete, Shutdown
 * and the `delete` binary.
 */
export async function withTask(fx: EmulatorFixture, id: string, args: string[], body: (t: ShimTask, daemon: number) => Promise<void>, o: TaskTimeouts = {}): Promise<void> {
  const b = fx.emu.bundle(id, fx.emu.spec(id, { args, rootPath: fx.rootfs }));
  const t = await fx.emu.startShim(id, b);
  try {
    const daemon = Number(fs.readFileSync(path.join(b, "shim.pid"), "utf8"));
    await t.task.Create({ id, bundle: b }, o.createMs ? { timeoutMs: o.createMs } : undefined);
    await t.task.Start({ id }, o.startMs ? { timeoutMs: o.startMs } : undefined);
    await body(t, daemon);
  } finally {
    await t.task.Kill({ id, signal: 9, all: true }).catch(() => {});
    await t.task.Wait({ id }, { timeoutMs: o.waitMs ?? 10_000 }).catch(() => {});
    await t.task.Delete({ id }).catch(() => {});
    await t.task.Shutdown({ id }).catch(() => {});
    t.close();
    await fx.emu.runner.delete(id, b);
  }
}
