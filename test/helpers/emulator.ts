// An emulator for a describe block: started before its tests with a busybox
// rootfs at hand, closed after them, and checked for leaks after each test.
import { beforeAll, afterAll, afterEach } from "vitest";
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
