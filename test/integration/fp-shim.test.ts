// The production shim carries no fault injection; the failpoint shim
// (containerd-shim-shimlab-fp-v2, src/fp-shim) does. The same input goes to
// both: a bundle with Task failpoints in its annotations, and every fault
// variable (event faults, mutants, agent-link toxics) in containerd's
// environment. Over ttrpc as 1.6 drives a shim, and over gRPC as 2.3 may.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ContainerdEmulator } from "../../src/harness/emulator";
import { FP_SHIM_BINARY, SHIM_BINARY } from "../../src/harness/containerd";
import type { Containerd2Options, ShimTask } from "../../src/harness/shim-runner";
import type { RpcError } from "../../src/ttrpc/status";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";

const skip = missing("root", "runc", "busybox");

const FAILPOINT = "io.containerd.runtime.v2.shim.failpoint.";
const FAILPOINTS = { [FAILPOINT + "Create"]: "1*error(injected create)", [FAILPOINT + "Start"]: "1*error(injected start)" };
const EVENT_AND_MUTANT_ENV = {
  SHIMLAB_EVENT_FAULTS: JSON.stringify([{ action: "drop", topic: "/tasks/start" }]),
  SHIMLAB_MUTANTS: "wait-exit-zero",
};
// Every connection to the agent is cut at its first byte: the hybrid-vsock CONNECT never gets through.
const LINK_ENV = { SHIMLAB_AGENT_LINK_FAULTS: JSON.stringify([{ stream: "upstream", spec: { type: "limit_data", bytes: 0 } }]) };

const MODES: { name: string; c2?: Containerd2Options }[] = [
  { name: "containerd 1.6, ttrpc", c2: undefined },
  { name: "containerd 2.3, gRPC", c2: { series: "2.3", params: "binary", protocol: "grpc" } },
];

const code = (p: Promise<unknown>) => p.then(() => "OK", (e: RpcError) => `${e.codeName}: ${e.message}`);

/** An emulator for one binary and environment; checked for leaks and removed after fn. */
async function withEmulator(binary: string, env: NodeJS.ProcessEnv, c2: Containerd2Options | undefined, fn: (emu: ContainerdEmulator) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-fp-"));
  // A short dial budget, so that the cut link fails Create in seconds; the production shim never needs it.
  const config = path.join(dir, "shimlab.toml");
  fs.writeFileSync(config, "[agent]\ndial_timeout_ms = 2000\n");
  // The directory's name is the emulator's cgroup parent's: unique, as mkdtemp made it.
  const emu = new ContainerdEmulator({ binary, dir, env: { ...env, SHIMLAB_CONFIG: config }, containerd2: c2 });
  try {
    await emu.start();
    await fn(emu);
    await expectNoLeaks([emu.address], [emu.dir], emu.cgroupParent);
  } finally {
    await emu.close();
    removeCgroupDirs(emu.cgroupParent);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function finish(emu: ContainerdEmulator, t: ShimTask): Promise<void> {
  await emu.teardown([t]);
}

describe.skipIf(skip).each(MODES)("fault injection lives in the failpoint shim only: $name", ({ c2 }) => {
  it("the production shim ignores failpoint annotations, event faults, mutants and agent-link faults", async () => {
    await withEmulator(SHIM_BINARY, { ...EVENT_AND_MUTANT_ENV, ...LINK_ENV }, c2, async (emu) => {
      const id = "prod";
      const b = emu.bundle(id, emu.spec(id, { args: ["/bin/sh", "-c", "exit 3"], rootPath: busyboxRootfs(), annotations: FAILPOINTS }));
      const t = await emu.startShim(id, b);
      try {
        expect(await code(t.task.Create({ id, bundle: b }))).toBe("OK");
        expect(await code(t.task.Start({ id }))).toBe("OK");
        expect((await t.task.Wait({ id })).exitStatus).toBe(3);
        await emu.events.waitFor((e) => e.topic === "/tasks/exit" && e.event.containerId === id, 10_000, "TaskExit");
        expect(emu.events.forContainer(id).map((e) => e.topic)).toEqual(["/tasks/create", "/tasks/start", "/tasks/exit"]);
        expect((await t.task.Delete({ id })).exitStatus).toBe(3);
      } finally {
        await finish(emu, t);
      }
    });
  }, 60_000);

  it("the failpoint shim applies the annotations' failpoints, drops the event and runs the mutant", async () => {
    await withEmulator(FP_SHIM_BINARY, EVENT_AND_MUTANT_ENV, c2, async (emu) => {
      const id = "fp";
      const b = emu.bundle(id, emu.spec(id, { args: ["/bin/sh", "-c", "exit 3"], rootPath: busyboxRootfs(), annotations: FAILPOINTS }));
      const t = await emu.startShim(id, b);
      try {
        // Each failpoint fails its method once, then lets it through (containerd's grammar).
        expect(await code(t.task.Create({ id, bundle: b }))).toBe("Unknown: injected create");
        expect(await code(t.task.Create({ id, bundle: b }))).toBe("OK");
        expect(await code(t.task.Start({ id }))).toBe("Unknown: injected start");
        expect(await code(t.task.Start({ id }))).toBe("OK");
        // wait-exit-zero: Wait loses the code that Delete still reports.
        expect((await t.task.Wait({ id })).exitStatus).toBe(0);
        await emu.events.waitFor((e) => e.topic === "/tasks/exit" && e.event.containerId === id, 10_000, "TaskExit");
        expect(emu.events.forContainer(id).map((e) => e.topic)).toEqual(["/tasks/create", "/tasks/exit"]);
        expect((await t.task.Delete({ id })).exitStatus).toBe(3);
      } finally {
        await finish(emu, t);
      }
    });
  }, 60_000);

  it("the failpoint shim dials the agent through the fault proxy", async () => {
    await withEmulator(FP_SHIM_BINARY, LINK_ENV, c2, async (emu) => {
      const id = "link";
      const b = emu.bundle(id, emu.spec(id, { args: ["/bin/sh", "-c", "exit 3"], rootPath: busyboxRootfs() }));
      const t = await emu.startShim(id, b);
      try {
        expect(await code(t.task.Create({ id, bundle: b }))).toMatch(/agent-link\.sock:1024: no agent within 2000 ms/);
        expect(emu.events.forContainer(id)).toEqual([]);
      } finally {
        await finish(emu, t);
      }
    });
  }, 60_000);
});
