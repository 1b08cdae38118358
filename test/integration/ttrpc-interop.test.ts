// Go's ttrpc client (github.com/containerd/ttrpc, the newest the Go module
// proxy serves: test/interop/go.mod) against shimlab's shim, with the same
// program run against containerd-shim-runc-v2 as the reference. Each shim runs
// one `sleep` task under the harness's containerd stand-in; test/interop's
// task-client makes the calls and prints what each answered.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { ContainerdEmulator } from "../../src/harness/emulator";
import { CheckContext } from "../../src/harness/conformance/context";
import { PROFILES, type Profile } from "../../src/harness/conformance/profiles";
import { SHIM_BINARY } from "../../src/harness/containerd";
import { runCommand } from "../../src/harness/shim-runner";
import { interopProgram, interopTtrpcVersion, type InteropOutcome } from "../../src/harness/peers/interop";
import { removeCgroupDirs } from "../../src/util/cgroup";
import { ARTIFACTS, busyboxRootfs, missing } from "../helpers/env";
import { expectNoProcessesMentioning } from "../helpers/leaks";

const RUNC_SHIM = "/usr/bin/containerd-shim-runc-v2";
const skip = missing("root", "runc", "busybox", "containerd-shim-runc-v2", "go");

interface Report {
  ttrpc: string;
  complete: boolean;
  error?: string;
  observations: Record<string, InteropOutcome>;
}

type Shim = "runc" | "shimlab";
const SHIMS: Record<Shim, { binary: string; profile: Profile }> = {
  runc: { binary: RUNC_SHIM, profile: PROFILES.runc },
  shimlab: { binary: SHIM_BINARY, profile: PROFILES.shimlab },
};

describe.skipIf(skip)("Go's ttrpc client against shimlab's shim and runc's", () => {
  let taskClient: string;
  let rootfs: string;
  const emus: Partial<Record<Shim, ContainerdEmulator>> = {};
  const reports: Partial<Record<Shim, Report>> = {};

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    taskClient = await interopProgram("task-client");
    for (const s of Object.keys(SHIMS) as Shim[]) {
      emus[s] = new ContainerdEmulator({ binary: SHIMS[s].binary, namespace: `interop-${s}` });
      await emus[s]!.start();
    }
  }, 600_000);

  afterAll(async () => {
    for (const emu of Object.values(emus)) {
      await emu.close();
      removeCgroupDirs(emu.cgroupParent);
    }
  });

  afterEach(async () => {
    for (const emu of Object.values(emus)) await expectNoProcessesMentioning([emu.address, emu.dir, taskClient], emu.cgroupParent);
  });

  /** A running `sleep` on a fresh shim, task-client's calls against it, and containerd's clean-up. */
  async function observe(shim: Shim): Promise<Report> {
    const emu = emus[shim]!;
    const ctx = new CheckContext(emu, SHIMS[shim].profile, rootfs, `go-${shim}-${process.pid}`);
    try {
      const h = await ctx.running({ args: ["/bin/sleep", "300"], nullIo: true });
      const r = await runCommand(taskClient, ["-address", h.shim.address, "-id", h.id, "-namespace", emu.namespace], { timeoutMs: 120_000 });
      const report = JSON.parse(r.stdout.toString()) as Report;
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      fs.writeFileSync(path.join(ARTIFACTS, `ttrpc-interop-${shim}.json`), JSON.stringify({ ...report, stderr: r.stderr.toString() }, null, 2));
      // Still serving after all of it (oversized frames included).
      expect((await h.task.State({ id: h.id })).status).toBe(3);
      return report;
    } finally {
      const notes = await ctx.cleanup();
      expect(notes).toEqual([]);
    }
  }

  it("runc's shim: the reference answers", async () => {
    const r = (reports.runc = await observe("runc"));
    expect(r.error).toBeUndefined();
    expect(r.complete).toBe(true);
    expect(r.ttrpc).toBe(interopTtrpcVersion());
    expect(r.observations.state.value).toEqual({ status: "RUNNING", has_pid: true, id: true });
  }, 180_000);

  it("shimlab's shim: the same calls", async () => {
    const r = (reports.shimlab = await observe("shimlab"));
    expect(r.error).toBeUndefined();
    expect(r.complete).toBe(true);
    expect(r.observations.state.value).toEqual({ status: "RUNNING", has_pid: true, id: true });
  }, 180_000);

  it("answers every call as runc's shim does, but for the documented differences", () => {
    const runc = reports.runc!.observations;
    const shimlab = reports.shimlab!.observations;
    expect(Object.keys(shimlab).sort()).toEqual(Object.keys(runc).sort());
    const mismatches = Object.keys(runc)
      .filter((k) => !(k in DIFFERENCES))
      .flatMap((k) => {
        const [a, b] = [comparable(k, runc[k]), comparable(k, shimlab[k])];
        return JSON.stringify(a) === JSON.stringify(b) ? [] : [`${k}: runc ${JSON.stringify(a)}, shimlab ${JSON.stringify(b)}`];
      });
    expect(mismatches).toEqual([]);
  });

  it("maps unknown ids and methods to containerd's codes", () => {
    const o = reports.shimlab!.observations;
    const answer = (k: string) => `${o[k].code}: ${o[k].message}`;
    for (const k of ["state.unknown-id", "pids.unknown-id", "stats.unknown-id", "kill.unknown-id"]) expect(answer(k)).toBe("NotFound: container not created: not found");
    for (const k of ["state.unknown-exec", "kill.unknown-exec", "wait.unknown-exec", "delete.unknown-exec"]) expect(answer(k)).toBe("NotFound: process does not exist no-such-exec: not found");
    expect(answer("unknown-method")).toBe("Unimplemented: method NoSuchMethod");
    expect(answer("unknown-service")).toBe("Unimplemented: service containerd.task.v2.NoSuchService");
    expect(o["raw.even-stream"]).toMatchObject({ code: "InvalidArgument", message: "StreamID must be odd for client initiated streams", value: { stream: 4 } });
    expect(o["raw.bad-payload"]).toMatchObject({ code: "Internal", value: { stream: 5 } });
    expect(o["raw.bad-payload"].message).toMatch(/^ttrpc: error unmarshalling payload: /);
  });

  it("takes metadata, deadlines and 64 calls at once on one connection", () => {
    const o = reports.shimlab!.observations;
    expect(o["state.metadata"]).toMatchObject({ code: "OK", value: { status: "RUNNING" } });
    expect(o["state.deadline"]).toMatchObject({ code: "OK", value: { status: "RUNNING" } });
    expect(o["state.concurrent"].value).toEqual({ calls: 64, codes: { OK: 64 } });
    // A Wait with a 300 ms deadline ends then (the client's context or the server's answer, whichever is first)…
    expect(o["wait.deadline"].code).toBe("DeadlineExceeded");
    expect(o["wait.deadline"].ms).toBeGreaterThanOrEqual(290);
    expect(o["wait.deadline"].ms).toBeLessThan(1200);
    expect(o["state.after-deadline"]).toMatchObject({ code: "OK", value: { status: "RUNNING" } });
    // …and shimlab's server applies timeout_nano itself, before the client's own 1.5 s deadline.
    expect(o["wait.server-deadline"]).toMatchObject({ code: "DeadlineExceeded", source: "server", message: "context deadline exceeded" });
    expect(o["wait.server-deadline"].ms).toBeLessThan(1200);
    expect(o["state.after-server-deadline"]).toMatchObject({ code: "OK", value: { status: "RUNNING" } });
    // 30 days of timeout_nano is no deadline yet: the client's own 500 ms ends the Wait.
    expect(o["wait.far-deadline"]).toMatchObject({ code: "DeadlineExceeded", source: "client" });
    expect(o["wait.far-deadline"].ms).toBeGreaterThanOrEqual(490);
    // runc's shim's Wait does not watch its context: the reference shows the client's deadline instead.
    expect(reports.runc!.observations["wait.server-deadline"]).toMatchObject({ code: "DeadlineExceeded", source: "client" });
  });

  it("answers an oversized request with ResourceExhausted on its stream and keeps serving", () => {
    const o = reports.shimlab!.observations;
    expect(o["raw.oversize"]).toMatchObject({ code: "ResourceExhausted", source: "server", message: "message length 4194305 exceed maximum message size of 4194304", value: { stream: 1 } });
    // the same connection, still in frame
    expect(o["raw.after-oversize"]).toMatchObject({ code: "OK", value: { stream: 3, status: "RUNNING" } });
    expect(o["raw.unknown-type"]).toMatchObject({ code: "OK", value: { stream: 9, status: "RUNNING" } });
    // the Go client's own connection
    expect(o["state.after-raw"]).toMatchObject({ code: "OK", value: { status: "RUNNING" } });
  });

  it("reports State, Pids, Stats and Kill as runc's shim does", () => {
    const o = reports.shimlab!.observations;
    expect(o.pids.value).toEqual({ count: 1, lists_state_pid: true });
    expect(o.stats.value).toEqual({ type_url: "io.containerd.cgroups.v1.Metrics", pids_current_positive: true });
    expect(o.kill.code).toBe("OK");
    expect(o.wait).toMatchObject({ code: "OK", value: { exit_status: 137, has_exited_at: true } });
    expect(o["state.stopped"].value).toEqual({ status: "STOPPED", exit_status: 137 });
    expect(`${o["kill.finished"].code}: ${o["kill.finished"].message}`).toBe("NotFound: process already finished: not found");
  });
});

/** Where shimlab answers differently from runc's shim on purpose. */
const DIFFERENCES: Record<string, string> = {
  "wait.server-deadline":
    "runc's shim's Wait ignores its context, so a timeout_nano shorter than the client's deadline changes nothing there; shimlab's server ends every call at its timeout_nano with DeadlineExceeded, as Go's server does for a handler that watches its context",
};

/** What of an outcome must agree between the shims: not the time, and for some keys less. */
function comparable(key: string, o: InteropOutcome): unknown {
  const { code, source, message, value } = o;
  // Which ends first, the client's 300 ms context or shimlab's answer at the same 300 ms, is a race.
  if (key === "wait.deadline") return { code };
  // Go's and shimlab's protobuf decoders word a truncated message differently.
  if (key === "raw.bad-payload") return { code, source, message: message?.replace(/(payload: ).*/, "$1…"), value };
  return { code, source, message, value };
}
