// A private real containerd for a describe block (SHIMLAB_CONTAINERD's
// version): started before its tests with a busybox rootfs at hand, checked
// for leaks after each test, stopped and removed after all.
import { beforeAll, afterAll, afterEach } from "vitest";
import { Containerd, type ContainerdOptions } from "../../src/harness/containerd";
import { removeCgroupDirs } from "../../src/util/cgroup";
import { busyboxRootfs } from "./env";
import { expectNoLeaks } from "./leaks";

export interface ContainerdFixture {
  ctd: Containerd;
  rootfs: string;
}

export function useContainerd(o: ContainerdOptions = {}): ContainerdFixture {
  const fx = {} as ContainerdFixture;
  beforeAll(async () => {
    fx.rootfs = busyboxRootfs();
    fx.ctd = new Containerd(o);
    await fx.ctd.start();
  });
  afterAll(async () => {
    if (!fx.ctd) return;
    await fx.ctd.destroy();
    removeCgroupDirs(fx.ctd.cgroupParent);
  });
  afterEach(async () => {
    await expectNoLeaks([fx.ctd.address], [fx.ctd.dir], fx.ctd.cgroupParent);
  });
  return fx;
}
