// One shim per pod through containerd 1.6's CRI plugin: pods run with the
// runtime handler `shimlab` (io.containerd.shimlab.v2) from a TypeScript CRI
// client, checked through /proc and the bundles' `address` files, and the same
// pod flow with the `runc` handler for comparison.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import { containerConfig, hostNetworkPod } from "../../src/harness/cri/pod";
import { ContainerState, type PodSandboxConfigInit } from "../../src/gen/runtime.v1";
import { descendants, runProcesses } from "../../src/harness/leaks";
import { CRI_NAMESPACE } from "../../src/harness/cri/images";
import { runCommand } from "../../src/harness/shim-runner";
import { REPO_ROOT } from "../../src/harness/containerd";
import { missing } from "../helpers/env";
import { useCriContainerd } from "../helpers/cri-fixture";
import { argOf, bundleAddress, bundleDir, findBelow, mockAgents, shimDaemons, unixSocketsOf, waitUntil, type Handler } from "../helpers/cri";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");

interface PodObservation {
  shimsForPod: number;
  exec: { stdout: string; stderr: string; exitCode: number };
  exitCodes: Record<string, number>;
  reasons: Record<string, string>;
}

describe.skipIf(skip)("CRI: one shim per pod (containerd 1.6 CRI plugin)", () => {
  const fx = useCriContainerd();
  const observed: Partial<Record<Handler, PodObservation>> = {};

  afterEach(async () => {
    const runcShims = shimDaemons(fx.env.ctd, "runc");
    expect(runcShims.map((p) => p.cmdline)).toEqual([]);
  });

  const pod = (name: string): PodSandboxConfigInit => hostNetworkPod({ name, uid: `uid-${name}-${process.pid}`, cgroupParent: fx.env.ctd.cgroupParent });

  async function createStarted(podId: string, config: PodSandboxConfigInit, name: string, command: string[], pid: "pod" | "container" = "container"): Promise<string> {
    const { containerId } = await fx.env.cri.runtime.CreateContainer({
      podSandboxId: podId,
      sandboxConfig: config,
      config: containerConfig({ name, image: fx.env.images.busybox, command, pid }),
    });
    await fx.env.cri.runtime.StartContainer({ containerId });
    return containerId;
  }

  async function exited(containerId: string) {
    return waitUntil(`container ${containerId} to exit`, async () => {
      const s = (await fx.env.cri.runtime.ContainerStatus({ containerId })).status;
      return s?.state === ContainerState.CONTAINER_EXITED ? s : null;
    });
  }

  /** The pod flow the issue asks for, on either handler; returns what it saw for comparison. */
  async function podFlow(handler: Handler, tag: string): Promise<PodObservation> {
    const ctd = fx.env.ctd;
    const config = pod(`flow-${handler}`);
    const { podSandboxId: podId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: handler });

    const status = await fx.env.cri.runtime.PodSandboxStatus({ podSandboxId: podId, verbose: true });
    expect(status.status?.runtimeHandler).toBe(handler);
    expect(JSON.parse(status.info.info).runtimeType).toBe(handler === "shimlab" ? "io.containerd.shimlab.v2" : "io.containerd.runc.v2");

    // Exactly one shim for the pod, started for the sandbox's id.
    const shims = shimDaemons(ctd, handler);
    expect(shims.map((s) => argOf(s, "-id"))).toEqual([podId]);
    const shim = shims[0];
    const podAddress = bundleAddress(ctd, podId);
    expect(podAddress).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    if (handler === "shimlab") {
      // The shim listens on the address in the sandbox bundle; one agent serves the pod, under the shim.
      expect(unixSocketsOf(shim.pid)).toContain(podAddress.slice("unix://".length));
      const agents = mockAgents(ctd);
      expect(agents).toHaveLength(1);
      expect(descendants(shim.pid).map((p) => p.pid)).toContain(agents[0].pid);
    }

    // Two app containers join the pod, created side by side: still the one shim, both running under it.
    const [c1, c2] = await Promise.all([
      createStarted(podId, config, "sleeper", ["sleep", `${tag}1`]),
      createStarted(podId, config, "trapper", ["sh", "-c", `trap 'exit 42' TERM; sleep ${tag}2 & wait $!`], "pod"),
    ]);
    expect(shimDaemons(ctd, handler).map((s) => s.pid)).toEqual([shim.pid]);
    for (const c of [c1, c2]) {
      expect(bundleAddress(ctd, c)).toBe(podAddress);
      expect((await fx.env.cri.runtime.ContainerStatus({ containerId: c })).status?.state).toBe(ContainerState.CONTAINER_RUNNING);
    }
    expect(findBelow(shim.pid, `sleep ${tag}1`), "c1's sleep runs under the pod's shim").toBeDefined();
    await waitUntil("c2's sleep", () => findBelow(shim.pid, `sleep ${tag}2`));
    if (handler === "shimlab") {
      // ... and in the pod's agent, not in a second one.
      const agents = mockAgents(ctd);
      expect(agents).toHaveLength(1);
      expect(findBelow(agents[0].pid, `sleep ${tag}1`)).toBeDefined();
    }

    // ExecSync: stdout, stderr and the exit code come back.
    const ex = await fx.env.cri.runtime.ExecSync({ containerId: c1, cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout: 30 });
    const exec = { stdout: ex.stdout.toString(), stderr: ex.stderr.toString(), exitCode: ex.exitCode };
    expect(exec).toEqual({ stdout: "out\n", stderr: "err\n", exitCode: 3 });
    // An exec joins its container's pid namespace: c1's own (its sleep is pid 1),
    // c2's is the pod's (shared with the pause container, Kata's sandbox_pidns).
    const init = async (c: string) => (await fx.env.cri.runtime.ExecSync({ containerId: c, cmd: ["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"], timeout: 30 })).stdout.toString().trim();
    expect(await init(c1)).toBe(`sleep ${tag}1`);
    expect(await init(c2)).toBe("/bin/sh /pause");

    // A third container that exits on its own with 7.
    const c3 = await createStarted(podId, config, "quitter", ["sh", "-c", "exit 7"]);
    const s3 = await exited(c3);

    // StopContainer: SIGTERM (trapped → 42), and timeout 0 → SIGKILL (137).
    await fx.env.cri.runtime.StopContainer({ containerId: c2, timeout: 10 });
    await fx.env.cri.runtime.StopContainer({ containerId: c1, timeout: 0 });
    const s1 = await exited(c1);
    const s2 = await exited(c2);
    const exitCodes = { sleeper: s1.exitCode, trapper: s2.exitCode, quitter: s3.exitCode };
    const reasons = { sleeper: s1.reason, trapper: s2.reason, quitter: s3.reason };
    expect(exitCodes).toEqual({ sleeper: 137, trapper: 42, quitter: 7 });
    // Real exit times (not Go's zero time). Not compared with startedAt: CRI stamps that after
    // Start returns, and "exit 7" can be over by then, on either runtime.
    for (const s of [s1, s2, s3]) expect(s.finishedAt).toBeGreaterThan(s.createdAt);

    // The shim outlives its exited containers while the pod is there.
    expect(shimDaemons(ctd, handler).map((s) => s.pid)).toEqual([shim.pid]);

    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId: podId });
    expect((await fx.env.cri.runtime.PodSandboxStatus({ podSandboxId: podId })).status?.state).toBe(1 /* SANDBOX_NOTREADY */);
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId: podId });

    // The pod's shim (and agent) are gone, with their socket and bundles.
    await waitUntil("the pod's shim to exit", () => !fs.existsSync(`/proc/${shim.pid}`));
    expect(shimDaemons(ctd, handler)).toEqual([]);
    expect(mockAgents(ctd)).toEqual([]);
    expect(fs.existsSync(podAddress.slice("unix://".length))).toBe(false);
    for (const id of [podId, c1, c2, c3]) expect(fs.existsSync(bundleDir(ctd, id))).toBe(false);
    const tasks = await ctd.ctr(["tasks", "ls", "-q"], { namespace: CRI_NAMESPACE });
    expect(tasks.out.trim()).toBe("");
    const containers = await fx.env.cri.runtime.ListContainers({});
    expect(containers.containers).toEqual([]);
    return { shimsForPod: shims.length, exec, exitCodes, reasons };
  }

  it("runs a host-network pod with handler shimlab in one shim: two containers, ExecSync, exit codes, stop and remove", async () => {
    observed.shimlab = await podFlow("shimlab", "360");
  }, 60_000);

  it("runs the same pod flow with handler runc, and both handlers agree", async () => {
    observed.runc = await podFlow("runc", "370");
    if (observed.shimlab) expect(observed.shimlab).toEqual(observed.runc);
  }, 60_000);

  it("gives five pods five shims, each pod's containers in its own shim", async () => {
    const names = [0, 1, 2, 3, 4].map((i) => `five-${i}`);
    const configs = names.map((n) => pod(n));
    const pods = await Promise.all(configs.map((config) => fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: "shimlab" }).then((r) => r.podSandboxId)));
    const ctrs = await Promise.all(pods.map((p, i) => createStarted(p, configs[i], "app", ["sleep", `380${i}`])));

    const shims = shimDaemons(fx.env.ctd, "shimlab");
    expect(shims).toHaveLength(5);
    expect(mockAgents(fx.env.ctd)).toHaveLength(5);
    const addresses = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const shim = shims.find((s) => argOf(s, "-id") === pods[i]);
      expect(shim, `a shim started for pod ${i}`).toBeDefined();
      const address = bundleAddress(fx.env.ctd, pods[i]);
      expect(bundleAddress(fx.env.ctd, ctrs[i])).toBe(address);
      expect(unixSocketsOf(shim!.pid)).toEqual([address.slice("unix://".length)]);
      addresses.add(address);
      // This pod's container is below this pod's shim, and no other pod's is.
      expect(findBelow(shim!.pid, `sleep 380${i}`)).toBeDefined();
      for (let j = 0; j < 5; j++) if (j !== i) expect(findBelow(shim!.pid, `sleep 380${j}`)).toBeUndefined();
    }
    expect(addresses.size).toBe(5);

    await Promise.all(pods.map((p) => fx.env.cri.runtime.StopPodSandbox({ podSandboxId: p })));
    await Promise.all(pods.map((p) => fx.env.cri.runtime.RemovePodSandbox({ podSandboxId: p })));
    await waitUntil("all five shims to exit", () => shimDaemons(fx.env.ctd, "shimlab").length === 0);
  }, 90_000);

  it("survives a crashed pod shim: the pod's containers go with it and report 255, the pod is removable, nothing leaks", async () => {
    const config = pod("crash");
    const { podSandboxId: podId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: "shimlab" });
    const c1 = await createStarted(podId, config, "victim", ["sleep", "3951"]);
    const [shim] = shimDaemons(fx.env.ctd, "shimlab");
    const [agent] = mockAgents(fx.env.ctd);
    expect(findBelow(agent.pid, "sleep 3951")).toBeDefined();
    process.kill(shim.pid, "SIGKILL");
    // containerd runs `delete` for each task of the dead shim; the agent watches its shim and goes too.
    const s1 = await exited(c1);
    expect(s1.exitCode).toBe(255);
    await waitUntil("the agent and the pod's processes to go", () => mockAgents(fx.env.ctd).length === 0 && !runProcesses({ cgroupParents: [fx.env.ctd.cgroupParent] }).some((p) => p.cmdline === "sleep 3951"));
    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId: podId });
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId: podId });
    expect((await fx.env.cri.runtime.ListPodSandbox({})).items).toEqual([]);
    // containerd's clean-up after a dead shim (`delete`, then the bundle) runs on its own time.
    await waitUntil("containerd to remove the pod's bundles", () => !fs.existsSync(bundleDir(fx.env.ctd, podId)) && !fs.existsSync(bundleDir(fx.env.ctd, c1)));
  });

  it("takes the pod down with its pause container, as Kata does: containers killed, pod not ready, shim gone", async () => {
    const config = pod("pausedeath");
    const { podSandboxId: podId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: "shimlab" });
    const c1 = await createStarted(podId, config, "orphan", ["sleep", "3961"]);
    const [shim] = shimDaemons(fx.env.ctd, "shimlab");
    const pause = findBelow(shim.pid, "/bin/sh /pause");
    expect(pause).toBeDefined();
    process.kill(pause!.pid, "SIGKILL");
    expect((await exited(c1)).exitCode).toBe(137);
    // CRI deletes the exited tasks (the sandbox's once its containers are gone) and marks the pod.
    await waitUntil("the pod to be not ready", async () => (await fx.env.cri.runtime.PodSandboxStatus({ podSandboxId: podId })).status?.state === 1);
    await waitUntil("the pod's shim to exit", () => !fs.existsSync(`/proc/${shim.pid}`), 15_000);
    const tasks = await fx.env.ctd.ctr(["tasks", "ls", "-q"], { namespace: CRI_NAMESPACE });
    expect(tasks.out.trim()).toBe("");
    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId: podId });
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId: podId });
  });

  it("refuses an unknown runtime handler without starting a shim", async () => {
    const err = await fx.env.cri.runtime.RunPodSandbox({ config: pod("nohandler"), runtimeHandler: "no-such-handler" }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toContain('no runtime for "no-such-handler" is configured');
    expect(shimDaemons(fx.env.ctd, "shimlab")).toEqual([]);
    expect((await fx.env.cri.runtime.ListPodSandbox({})).items).toEqual([]);
  });

  it("drives a pod from the command line: shimlab cri runp, run, exec, ps, stopp, rmp", async () => {
    const cli = async (...args: string[]) => {
      const r = await runCommand(`${REPO_ROOT}/bin/shimlab`, ["cri", "--address", fx.env.ctd.address, ...args], { timeoutMs: 60_000 });
      return { code: r.code, out: r.stdout.toString(), err: r.stderr.toString() };
    };
    const runp = await cli("runp", "--name", "cli-pod");
    expect(runp.code, runp.err).toBe(0);
    const podId = runp.out.trim();
    expect(podId).toMatch(/^[0-9a-f]{64}$/);
    const run = await cli("run", podId, "app", fx.env.images.busybox, "--", "sleep", "3901");
    expect(run.code, run.err).toBe(0);
    const ctrId = run.out.trim();
    const ex = await cli("exec", ctrId, "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 6");
    expect(ex).toEqual({ code: 6, out: "to-out\n", err: "to-err\n" });
    const ps = await cli("ps", "--pod", podId);
    expect(ps.out).toMatch(new RegExp(`${ctrId.slice(0, 13)}\\s+${fx.env.images.busybox.replace(/\./g, "\\.")}\\s+.*CONTAINER_RUNNING\\s+app`));
    expect(shimDaemons(fx.env.ctd, "shimlab").map((s) => argOf(s, "-id"))).toEqual([podId]);
    expect((await cli("stopp", podId)).code).toBe(0);
    expect((await cli("rmp", podId)).code).toBe(0);
    expect((await cli("pods")).out.trim().split("\n")).toHaveLength(1); // the header only
    const bad = await cli("exec", "no-such-container", "--", "true");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("RuntimeService/ExecSync");
    expect((await cli("frobnicate")).code).toBe(2);
    await waitUntil("the pod's shim to exit", () => shimDaemons(fx.env.ctd, "shimlab").length === 0);
  });
});
