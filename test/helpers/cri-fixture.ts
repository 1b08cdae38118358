// A private containerd with CRI for one test file: started before its tests,
// every pod removed and leaks checked after each, stopped after all.
import { beforeAll, afterAll, afterEach } from "vitest";
import { startCriContainerd, type CriContainerd, type CriContainerdOptions } from "../../src/harness/cri/containerd";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { busyboxRootfs } from "./env";
import { expectNoLeaks } from "./leaks";
import { removeAllPods } from "./cri";

export interface CriFixture {
  env: CriContainerd;
}

export interface CriFixtureOptions {
  /** Options for containerd, made when it starts (a test may need files written first). */
  options?: () => CriContainerdOptions | Promise<CriContainerdOptions>;
  /** More directories whose files no process may still hold after a test. */
  dirs?: () => string[];
  startTimeoutMs?: number;
}

export function useCriContainerd(o: CriFixtureOptions = {}): CriFixture {
  const fx = {} as CriFixture;
  beforeAll(async () => {
    fx.env = await startCriContainerd({ busyboxRootfs: busyboxRootfs(), ...(await o.options?.()) });
  }, o.startTimeoutMs ?? 60_000);
  afterAll(async () => {
    if (!fx.env) return;
    await removeAllPods(fx.env.cri);
    const cg = fx.env.ctd.cgroupParent;
    await fx.env.destroy();
    removeCgroupDirs(cg);
  });
  afterEach(async () => {
    // Every test removes its pods; a failed one must not leave them to the next.
    await removeAllPods(fx.env.cri);
    await expectNoLeaks([fx.env.ctd.dir], [fx.env.ctd.dir, ...(o.dirs?.() ?? [])], fx.env.ctd.cgroupParent);
  });
  return fx;
}
