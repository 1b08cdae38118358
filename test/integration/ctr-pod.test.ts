// Pod grouping by annotations through a real containerd and plain ctr: a
// sandbox task and a container marked as its member (CRI's keys, as
// containerd's CRI sets them, or CRI-O's) share one shim; containerd runs
// `delete` after each task deletion and the shim serves on until the last.
// runc's shim groups by CRI's sandbox-id key too, and is the reference there.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { shimAddressOf } from "../../src/harness/bundle";
import { missing } from "../helpers/env";
import { useContainerd } from "../helpers/containerd-fixture";
import { forceRemove } from "../helpers/ctr";
import { argOf, shimDaemons, waitUntil } from "../helpers/cri";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const RUNTIMES = { runc: "io.containerd.runc.v2", shimlab: "io.containerd.shimlab.v2" } as const;

const KEYS = {
  cri: (type: "sandbox" | "container", pod: string) => ["io.kubernetes.cri.container-type=" + type, "io.kubernetes.cri.sandbox-id=" + pod],
  crio: (type: "sandbox" | "container", pod: string) => ["io.kubernetes.cri-o.ContainerType=" + type, "io.kubernetes.cri-o.SandboxID=" + pod],
};

describe.skipIf(skip)("pods by annotation under a real containerd (ctr --annotation)", () => {
  const fx = useContainerd();

  const bundle = (id: string) => path.join(fx.ctd.state, "io.containerd.runtime.v2.task", "default", id);
  const runD = (rt: keyof typeof RUNTIMES, id: string, annotations: string[], cmd: string[]) =>
    fx.ctd.ctr(["run", "-d", "--runtime", RUNTIMES[rt], ...annotations.flatMap((a) => ["--annotation", a]), "--rootfs", fx.rootfs, id, ...cmd]);
  const daemonsOf = (rt: keyof typeof RUNTIMES, ids: string[]) => shimDaemons(fx.ctd, rt).filter((p) => ids.includes(argOf(p, "-id") ?? ""));

  async function podFlow(rt: keyof typeof RUNTIMES, keys: keyof typeof KEYS) {
    const pod = `pod-${rt}-${keys}`;
    const app = `app-${rt}-${keys}`;
    try {
      const p = await runD(rt, pod, KEYS[keys]("sandbox", pod), ["/bin/sleep", "3001"]);
      expect(p.code, p.err).toBe(0);
      const a = await runD(rt, app, KEYS[keys]("container", pod), ["/bin/sh", "-c", "sleep 3002; exit 5"]);
      expect(a.code, a.err).toBe(0);
      const shims = daemonsOf(rt, [pod, app]);
      const grouped = shimAddressOf(bundle(app)) === shimAddressOf(bundle(pod));
      // An exec in the member answers through whichever shim serves it.
      const ex = await fx.ctd.ctr(["task", "exec", "--exec-id", "x", app, "/bin/sh", "-c", "echo member; exit 3"]);
      expect([ex.code, ex.out]).toEqual([3, "member\n"]);
      // Deleting the member: containerd runs `delete -id <member>` on the shim binary, which must not take the pod's shim.
      expect((await fx.ctd.ctr(["task", "kill", "-s", "SIGKILL", app])).code).toBe(0);
      await waitUntil(`${app} stopped`, async () => /STOPPED/.test((await fx.ctd.ctr(["task", "ls"])).out.split("\n").find((l) => l.startsWith(app + " ")) ?? ""));
      const del = await fx.ctd.ctr(["task", "delete", app]);
      expect(del.code, del.err).toBe(0);
      const podStill = (await fx.ctd.ctr(["task", "ls"])).out.split("\n").find((l) => l.startsWith(pod + " ")) ?? "";
      const after = daemonsOf(rt, [pod, app]);
      return { shims: shims.length, shimIds: shims.map((s) => argOf(s, "-id")), grouped, podRunningAfterMemberDelete: /RUNNING/.test(podStill), shimsAfterMemberDelete: after.length };
    } finally {
      await forceRemove(fx.ctd, app);
      await forceRemove(fx.ctd, pod);
    }
  }

  it("CRI's keys: sandbox and member in one shim, on runc's shim and on shimlab's", async () => {
    for (const rt of ["runc", "shimlab"] as const) {
      const r = await podFlow(rt, "cri");
      expect(r, rt).toEqual({ shims: 1, shimIds: [`pod-${rt}-cri`], grouped: true, podRunningAfterMemberDelete: true, shimsAfterMemberDelete: 1 });
    }
  }, 120_000);

  it("CRI-O's keys: shimlab groups them too (runc's shim knows only CRI's and gives each task its own)", async () => {
    expect(await podFlow("shimlab", "crio")).toEqual({ shims: 1, shimIds: ["pod-shimlab-crio"], grouped: true, podRunningAfterMemberDelete: true, shimsAfterMemberDelete: 1 });
    const runc = await podFlow("runc", "crio");
    expect(runc.grouped).toBe(false);
    expect(runc.shims).toBe(2);
  }, 120_000);

  it("the pod's shim exits once its last task is deleted, and leaves nothing in containerd's state", async () => {
    const pod = "pod-last";
    const app = "app-last";
    try {
      expect((await runD("shimlab", pod, KEYS.cri("sandbox", pod), ["/bin/sleep", "3003"])).code).toBe(0);
      expect((await runD("shimlab", app, KEYS.cri("container", pod), ["/bin/sleep", "3004"])).code).toBe(0);
      const [shim] = daemonsOf("shimlab", [pod]);
      expect(shim).toBeDefined();
      for (const id of [app, pod]) {
        await fx.ctd.ctr(["task", "kill", "-s", "SIGKILL", id]);
        await waitUntil(`${id} stopped`, async () => /STOPPED/.test((await fx.ctd.ctr(["task", "ls"])).out.split("\n").find((l) => l.startsWith(id + " ")) ?? ""));
        const d = await fx.ctd.ctr(["task", "delete", id]);
        expect(d.code, d.err).toBe(0);
      }
      await waitUntil("the pod's shim to exit", () => !fs.existsSync(`/proc/${shim.pid}`), 5_000);
      for (const id of [app, pod]) expect(fs.existsSync(bundle(id)), id).toBe(false);
    } finally {
      await forceRemove(fx.ctd, app);
      await forceRemove(fx.ctd, pod);
    }
  }, 120_000);
});
