// Kata Containers' own Go agent client (virtcontainers/pkg/agent/protocols/client
// of github.com/kata-containers/kata-containers/src/runtime, the version
// test/interop/go.mod pins) against shimlab's mock agent, over hybrid vsock as
// Kata's runtime dials Cloud Hypervisor's and Firecracker's agents. shimlab's
// shim is not involved: this holds the mock agent to Kata's client and
// generated types, not to shimlab's own copy of the protos.
// test/interop's kata-agent-client makes the calls and prints what each answered.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { REPO_ROOT } from "../../src/harness/containerd";
import { runCommand } from "../../src/harness/shim-runner";
import { interopKataVersion, interopProgram, type InteropOutcome } from "../../src/harness/peers/interop";
import { cgroupDirs } from "../../src/harness/leaks";
import { removeCgroupTree } from "../../src/util/cgroup";
import { ARTIFACTS, busyboxRootfs, missing } from "../helpers/env";
import { expectNoProcessesMentioning } from "../helpers/leaks";

// The agent runs containers with runc, as kata-agent does in its guest: root, runc and a rootfs.
const skip = missing("root", "runc", "busybox", "go");
const AGENT_MAIN = path.join(REPO_ROOT, "dist", "mock-agent", "main.js");
const AGENT_PORT = 1024;

interface Report {
  kata: string;
  complete: boolean;
  error?: string;
  steps: (InteropOutcome & { name: string })[];
  survey: Record<string, InteropOutcome>;
}

/**
 * What the host mock agent answers Unimplemented, and why (the "why" is the
 * agent's own message, so a change of mind shows up here). Every other method
 * of Kata's client must be served. Kept in step with test/interop/README.md.
 */
const NOT_SERVED: Record<string, string> = {
  // Network calls: a guest agent serves them (src/mock-agent/network.ts); a
  // host agent shares the host's network, which is not its to change.
  UpdateInterface: "UpdateInterface: this agent runs on the host and shares its network, which is not its to change (a guest agent serves it): not implemented",
  UpdateRoutes: "UpdateRoutes: this agent runs on the host and shares its network, which is not its to change (a guest agent serves it): not implemented",
  ListInterfaces: "ListInterfaces: this agent runs on the host and shares its network, which is not its to change (a guest agent serves it): not implemented",
  ListRoutes: "ListRoutes: this agent runs on the host and shares its network, which is not its to change (a guest agent serves it): not implemented",
  // Guest management a mock has nothing truthful to do for: no hotplugged memory
  // or CPUs, no swap, no guest clock, no policy engine, no volumes of its own.
  ...Object.fromEntries(
    [
      "AddARPNeighbors",
      "GetIPTables",
      "SetIPTables",
      "OnlineCPUMem",
      "ReseedRandomDev",
      "MemHotplugByProbe",
      "SetGuestDateTime",
      "CopyFile",
      "AddSwap",
      "GetVolumeStats",
      "ResizeVolume",
      "SetPolicy",
      "UpdateEphemeralMounts",
      "RemoveStaleVirtiofsShareMounts",
    ].map((m) => [m, `${m} is not supported by the shimlab mock agent: not implemented`]),
  ),
};

/** Kata's AgentService at the pinned version has 38 methods; the survey leaves out DestroySandbox (the lifecycle's last step). */
const SURVEYED = 37;

describe.skipIf(skip)("Kata's Go agent client against the mock agent (hybrid vsock)", () => {
  let client: string;
  let dir: string;
  let agent: ChildProcess | null = null;
  let agentExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  let report: Report;
  // A cgroup parent of this run's own, so what the agent leaves can be told from anyone else's.
  const cgroupParent = `/shimlab-kata-client-${process.pid}`;

  beforeAll(async () => {
    client = await interopProgram("kata-agent-client");
    const rootfs = busyboxRootfs();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-kata-client-"));
    const sock = path.join(dir, "agent.sock");
    // As src/hypervisor/host-agent.ts starts it for a sandbox: hybrid vsock on a unix socket, runc, READY on fd 3.
    agent = spawn(
      process.execPath,
      [AGENT_MAIN, "--listen", sock, "--hvsock", "--state-dir", path.join(dir, "agent"), "--runtime", "runc", "--ready-fd", "3", "--log", path.join(dir, "agent.log")],
      { cwd: dir, stdio: ["ignore", "ignore", "ignore", "pipe"], env: { ...process.env, SHIMLAB_CGROUP_PARENT: cgroupParent } },
    );
    const a = agent;
    agentExit = new Promise((resolve) => a.once("exit", (code, signal) => resolve({ code, signal })));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the mock agent did not say READY within 10 s")), 10_000);
      a.stdio[3]!.on("data", (d: Buffer) => {
        if (d.toString().includes("READY")) {
          clearTimeout(t);
          resolve();
        }
      });
      a.once("exit", (code) => reject(new Error(`the mock agent exited (${code}) before it was ready`)));
    });
    const r = await runCommand(client, ["-address", `hvsock://${sock}:${AGENT_PORT}`, "-rootfs", rootfs, "-sandbox", `kata-client-${process.pid}`], { timeoutMs: 60_000 });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACTS, "kata-agent-client.json"), JSON.stringify({ exit: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() }, null, 2));
    expect(r.code, r.stderr.toString()).toBe(0);
    report = JSON.parse(r.stdout.toString()) as Report;
  }, 600_000);

  afterAll(async () => {
    // Normally the agent is gone already (DestroySandbox ends a host agent); after a failure it is stopped here.
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      agent.kill("SIGTERM");
      await Promise.race([agentExit, new Promise((r) => setTimeout(r, 5_000))]);
      if (agent.exitCode === null && agent.signalCode === null) agent.kill("SIGKILL");
    }
    try {
      await expectNoProcessesMentioning(dir ? [dir, client] : [client], cgroupParent);
    } finally {
      removeCgroupTree(cgroupParent);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const step = (name: string): InteropOutcome => {
    const s = report.steps.find((x) => x.name === name);
    if (!s) throw new Error(`no step ${name} in the report (it stopped at ${report.steps.at(-1)?.name}: ${report.error})`);
    return s;
  };

  it("runs a whole sandbox's life with Kata's client and protocol types", () => {
    expect(report.error).toBeUndefined();
    expect(report.complete).toBe(true);
    // The binary was built with the module go.mod pins (and the README names).
    expect(report.kata).toBe(interopKataVersion());
    const ok = (n: string) => expect(step(n), n).toMatchObject({ code: "OK", source: "server" });
    for (const n of ["health.check", "health.version", "create-sandbox", "create-container", "start-container", "exec-process", "exec-process.sleeper", "signal-process.sigterm-exec", "signal-process.sigkill-init", "remove-container", "destroy-sandbox"]) ok(n);
    expect(step("health.check").value).toEqual({ status: "SERVING" });
    expect(step("health.version").value).toMatchObject({ agent_version: "shimlab-mock-agent 0.1.0" });
  });

  it("returns the container's stdout and exit statuses as kata-agent does", () => {
    // The init's output while it runs, its hostname the spec's.
    expect(step("read-stdout.init").value).toEqual({ data: `hello from the kata client\nhost=kata-client-${process.pid}\n` });
    // An exec's stdout to its end of stream (an empty read), without its stderr, then its exit code.
    expect(step("read-stdout.exec").value).toEqual({ data: "out-42\n" });
    expect(step("wait-process.exec")).toMatchObject({ code: "OK", value: { status: 3 } });
    // Signalled processes: 128 + the signal, as the shim reports them to containerd.
    expect(step("read-stdout.sleeper").value).toEqual({ data: "ready\n" });
    expect(step("wait-process.sleeper")).toMatchObject({ code: "OK", value: { status: 143 } });
    expect(step("wait-process.init")).toMatchObject({ code: "OK", value: { status: 137 } });
  });

  it("refuses out-of-order and unknown calls with kata-agent's codes", () => {
    const answer = (n: string) => `${step(n).code}: ${step(n).message}`;
    expect(answer("create-container.before-sandbox")).toBe("FailedPrecondition: sandbox not created: call CreateSandbox first: failed precondition");
    expect(answer("create-sandbox.again")).toBe(`AlreadyExists: sandbox kata-client-${process.pid} already created: already exists`);
    expect(answer("start-container.again")).toBe(`FailedPrecondition: container kata-client-${process.pid} is running, not created: failed precondition`);
    expect(answer("start-container.unknown")).toBe("NotFound: container no-such-container not found: not found");
    expect(answer("exec-process.unknown-container")).toBe("NotFound: container no-such-container not found: not found");
    expect(answer("wait-process.exec-again")).toBe(`InvalidArgument: invalid exec id exec-out in container kata-client-${process.pid}: invalid argument`);
    expect(answer("remove-container.again")).toBe(`NotFound: container kata-client-${process.pid} not found: not found`);
  });

  it("serves every method of Kata's client but those the table says, each refused with its reason", () => {
    expect(Object.keys(report.survey)).toHaveLength(SURVEYED);
    const unimplemented = Object.fromEntries(
      Object.entries(report.survey)
        .filter(([, o]) => o.code === "Unimplemented")
        .map(([m, o]) => [m, o.message]),
    );
    expect(unimplemented).toEqual(NOT_SERVED);
    // The served ones answered for themselves: an empty request names no container, and
    // GetOOMEvent waits (the client's 500 ms deadline ends it) for an OOM that does not come.
    const served = Object.entries(report.survey).filter(([m]) => !(m in NOT_SERVED));
    for (const [m, o] of served) expect(o.source, m).not.toBe("transport");
    expect(report.survey.GetGuestDetails.code).toBe("OK");
    expect(report.survey.GetMetrics.code).toBe("OK");
    expect(report.survey.CreateSandbox.code).toBe("AlreadyExists");
    expect(report.survey.CreateContainer).toMatchObject({ code: "InvalidArgument", message: "container_id is empty: invalid argument" });
    expect(report.survey.GetOOMEvent.code).toBe("DeadlineExceeded");
    for (const m of ["StartContainer", "ExecProcess", "SignalProcess", "WaitProcess", "ReadStdout", "RemoveContainer", "StatsContainer"]) expect(report.survey[m].code, m).toBe("NotFound");
  });

  it("ends the host agent after DestroySandbox, leaving no socket, container or cgroup", async () => {
    const exit = await Promise.race([agentExit, new Promise<null>((r) => setTimeout(() => r(null), 5_000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(path.join(dir, "agent.sock"))).toBe(false);
    await expectNoProcessesMentioning([dir], cgroupParent);
    expect(cgroupDirs(cgroupParent)).toEqual([]);
  });
});
