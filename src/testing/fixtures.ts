// The fixtures behind shimlab/vitest, given the test runner's hooks: each
// registers its hooks in the describe block that calls it: started before the
// block's tests, checked for leaks after each test (only what this fixture
// started), stopped and removed after the block. Taking the hooks instead of
// importing vitest lets the ESM entry hand over vitest's own instance (it is
// ESM-only; a CommonJS require of it would be a second copy) and keeps the
// runner the user's (a peer dependency).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Containerd, type ContainerdOptions } from "../harness/containerd";
import { ContainerdEmulator, type EmulatorOptions } from "../harness/emulator";
import { buildBusyboxRootfs } from "../harness/rootfs";
import { expectNoLeaks, expectNoProcessesMentioning } from "../harness/leaks";
import { resolveContainerd } from "../harness/peers/containerd";
import { removeCgroupDirs } from "../util/cgroup";

/** A busybox root filesystem, built once per user under the temp directory. */
export function busyboxRootfs(): string {
  const dir = path.join(os.tmpdir(), `shimlab-busybox-${process.getuid?.() ?? 0}`);
  fs.mkdirSync(dir, { recursive: true });
  return buildBusyboxRootfs(dir);
}

type Hook = (fn: () => unknown, timeout?: number) => void;
export interface Hooks {
  beforeAll: Hook;
  afterAll: Hook;
  afterEach: Hook;
}

export interface Fixtures {
  /** A private real containerd (its own root, state, sockets and config) for a describe block. */
  useContainerd(o?: UseContainerdOptions): ContainerdFixture;
  /**
   * Any shim binary driven as containerd drives it (start, Task calls over its
   * socket, events, delete), with no containerd: `emu.ctrRun(...)` for a whole
   * `ctr run`, or `emu.startShim(...)` and the Task API by hand.
   */
  useShim(o: UseShimOptions): ShimFixture;
}

export function makeFixtures(h: Hooks): Fixtures {
  return { useContainerd: (o) => useContainerd(h, o), useShim: (o) => useShim(h, o) };
}

export interface ContainerdFixture {
  /** Set once the block's beforeAll ran. */
  ctd: Containerd;
  rootfs: string;
}

export interface UseContainerdOptions extends ContainerdOptions {
  /** "1.6", "1.7", "2.1" or a path to a containerd binary; SHIMLAB_CONTAINERD's (or 1.6) when absent. */
  version?: string;
}

function useContainerd(h: Hooks, o: UseContainerdOptions = {}): ContainerdFixture {
  const fx = {} as ContainerdFixture;
  h.beforeAll(async () => {
    fx.rootfs = busyboxRootfs();
    const peer = o.peer ?? (o.version ? await resolveContainerd(o.version) : undefined);
    fx.ctd = new Containerd({ ...o, peer });
    await fx.ctd.start();
  }, 300_000);
  h.afterAll(async () => {
    if (!fx.ctd) return;
    await fx.ctd.destroy();
    removeCgroupDirs(fx.ctd.cgroupParent);
  });
  h.afterEach(async () => {
    if (!fx.ctd) return;
    // Any shim containerd started for this block names its address on its command line.
    await expectNoProcessesMentioning([fx.ctd.address], fx.ctd.cgroupParent);
    await expectNoLeaks([fx.ctd.address], [fx.ctd.dir], fx.ctd.cgroupParent);
  });
  return fx;
}

export interface ShimFixture {
  /** containerd's side of the shim contract, for this block's shim binary. */
  emu: ContainerdEmulator;
  rootfs: string;
}

export type UseShimOptions = Omit<EmulatorOptions, "dir">;

function useShim(h: Hooks, o: UseShimOptions): ShimFixture {
  const fx = {} as ShimFixture;
  h.beforeAll(async () => {
    fx.rootfs = busyboxRootfs();
    // Short: the shim's fifos and sockets are made under it.
    fx.emu = new ContainerdEmulator({ ...o, dir: fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-use-")) });
    await fx.emu.start();
  });
  h.afterAll(async () => {
    if (!fx.emu) return;
    await fx.emu.close();
    fs.rmSync(fx.emu.dir, { recursive: true, force: true });
    removeCgroupDirs(fx.emu.cgroupParent);
  });
  h.afterEach(async () => {
    if (!fx.emu) return;
    await expectNoProcessesMentioning([fx.emu.dir], fx.emu.cgroupParent);
  });
  return fx;
}
