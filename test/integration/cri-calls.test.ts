// Which shim calls containerd's CRI makes for a pod's whole life, counted per
// task from shimlab's own trace, on whichever containerd this run uses. The
// versions agree but for one: 2.1's CRI asks a started sandbox's State once
// where 1.6 and 1.7 ask twice (difference `cri-sandbox-state`). A change in
// what CRI calls (a new RPC, one gone) fails here first.
import { describe, it, expect, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { containerConfig, hostNetworkPod } from "../../src/harness/cri/pod";
import { shows } from "../../src/harness/peers/differences";
import { readTrace } from "../../src/trace/model";
import { missing } from "../helpers/env";
import { useCriContainerd } from "../helpers/cri-fixture";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const trace = fs.mkdtempSync(path.join(os.tmpdir(), "cri-calls-"));

describe.skipIf(skip)("the shim calls CRI makes for a pod", () => {
  const fx = useCriContainerd({ options: () => ({ env: { SHIMLAB_TRACE: trace + "/" } }) });
  afterAll(() => fs.rmSync(trace, { recursive: true, force: true }));

  it("run, create, start, stop and remove a container, stop and remove the pod: the same calls on every version but one", async () => {
    const cri = fx.env.cri.runtime;
    const config = hostNetworkPod({ name: "calls", uid: `uid-calls-${process.pid}`, cgroupParent: fx.env.ctd.cgroupParent });
    const { podSandboxId } = await cri.RunPodSandbox({ config, runtimeHandler: "shimlab" });
    const command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"];
    const { containerId } = await cri.CreateContainer({ podSandboxId, sandboxConfig: config, config: containerConfig({ name: "c", image: fx.env.images.busybox, command }) });
    await cri.StartContainer({ containerId });
    await cri.StopContainer({ containerId, timeout: 10 });
    await cri.RemoveContainer({ containerId });
    await cri.StopPodSandbox({ podSandboxId });
    await cri.RemovePodSandbox({ podSandboxId });

    const calls = readTrace(trace).filter((r) => (r.kind === "rpc.call" && r.from === "containerd") || r.kind === "exec.call");
    const count = (id: string) => {
      const c: Record<string, number> = {};
      for (const r of calls.filter((r) => ((r.req as { id?: string } | undefined)?.id ?? r.task) === id)) c[String(r.method ?? r.action)] = (c[String(r.method ?? r.action)] ?? 0) + 1;
      return c;
    };
    // Binary calls (start, delete) and Task RPCs; every task gets its own start, Shutdown and delete.
    const lifecycle = { start: 1, Create: 1, Connect: 3, Start: 1, Wait: 2, Delete: 1, Shutdown: 1, delete: 1 };
    const pod = count(podSandboxId);
    expect(pod).toEqual({ ...lifecycle, State: shows(fx.env.ctd.peer, "cri-sandbox-state") ? 4 : 5, Kill: 2 });
    // The container's SIGTERM (and, when the exit is not seen first, one more Kill) varies with timing.
    const { Kill, ...ctr } = count(containerId);
    expect(ctr).toEqual({ ...lifecycle, State: 4 });
    expect(Kill).toBeGreaterThanOrEqual(2);
  }, 60_000);
});
