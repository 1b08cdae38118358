// The pod flow an operator runs with Kubernetes' crictl (cri-tools, built from
// the Go module proxy), on handlers runc and shimlab: runp, create, start,
// exec, inspect, stop, rm. At each step crictl's view of the pod and its
// containers must be shimlab cri's view (states, exit codes, handler), the
// pod one shim; and both handlers must show the same.
import { describe, it, expect, beforeAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { crictlBinary } from "../../src/harness/peers/cri-tools";
import { runCommand } from "../../src/harness/shim-runner";
import { REPO_ROOT } from "../../src/harness/containerd";
import { missing } from "../helpers/env";
import { useCriContainerd } from "../helpers/cri-fixture";
import { argOf, shimDaemons, waitUntil, type Handler } from "../helpers/cri";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");

interface Seen {
  /** The pod as each client saw it after runp: state and handler. */
  pod: { crictl: [string, string]; shimlab: [string, string] };
  /** Per step, a container's (state, exit code) from crictl inspect and from shimlab cri inspect. */
  steps: Record<string, { crictl: [string, number]; shimlab: [string, number] }>;
  exec: { crictlSync: [number, string]; crictlStream: [number, string]; shimlab: [number, string] };
  shims: string[];
  podGone: { crictl: string; shimlab: string };
}

describe.skipIf(skip)("crictl and shimlab cri see the same pods (runc and shimlab)", () => {
  const fx = useCriContainerd();
  let crictl: string;
  let work: string;
  const seen: Partial<Record<Handler, Seen>> = {};

  beforeAll(async () => {
    crictl = await crictlBinary();
    work = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-crictl-"));
    return () => fs.rmSync(work, { recursive: true, force: true });
  }, 600_000);

  const run = async (bin: string, args: string[]) => {
    const r = await runCommand(bin, args, { timeoutMs: 60_000 });
    return { code: r.code, out: r.stdout.toString(), err: r.stderr.toString() };
  };
  const cc = (...args: string[]) => {
    // A config of its own, not the machine's /etc/crictl.yaml: this containerd's endpoints are all of it.
    const config = path.join(work, "crictl.yaml");
    const endpoint = `unix://${fx.env.ctd.address}`;
    fs.writeFileSync(config, `runtime-endpoint: ${endpoint}\nimage-endpoint: ${endpoint}\ntimeout: 30\n`);
    return run(crictl, ["--config", config, ...args]);
  };
  const sl = (...args: string[]) => run(`${REPO_ROOT}/bin/shimlab`, ["cri", "--address", fx.env.ctd.address, ...args]);
  const ok = (r: { code: number | null; out: string; err: string }, what: string) => {
    expect(r.code, `${what}: ${r.err}`).toBe(0);
    return r.out;
  };

  /** A container's state and exit code, as crictl inspect and shimlab cri inspect report them. */
  async function views(id: string): Promise<{ crictl: [string, number]; shimlab: [string, number] }> {
    const c = JSON.parse(ok(await cc("inspect", "-o", "json", id), "crictl inspect")).status;
    const s = JSON.parse(ok(await sl("inspect", id), "shimlab cri inspect")).status;
    // shimlab's JSON leaves out zero values (CONTAINER_CREATED is 0), crictl's may not.
    return { crictl: [c.state ?? "CONTAINER_CREATED", c.exitCode ?? 0], shimlab: [s.state ?? "CONTAINER_CREATED", s.exitCode ?? 0] };
  }

  async function flow(handler: Handler): Promise<Seen> {
    const podJson = path.join(work, `pod-${handler}.json`);
    fs.writeFileSync(
      podJson,
      JSON.stringify({
        metadata: { name: `crictl-${handler}`, namespace: "default", uid: `uid-crictl-${handler}-${process.pid}`, attempt: 0 },
        linux: { cgroup_parent: fx.env.ctd.cgroupParent, security_context: { namespace_options: { network: 2, pid: 1 } } },
      }),
    );
    const ctrJson = (name: string, command: string[]) => {
      const f = path.join(work, `${handler}-${name}.json`);
      fs.writeFileSync(f, JSON.stringify({ metadata: { name }, image: { image: fx.env.images.busybox }, command, linux: {} }));
      return f;
    };

    const podId = ok(await cc("runp", "--runtime", handler, podJson), "crictl runp").trim();
    const pc = JSON.parse(ok(await cc("inspectp", "-o", "json", podId), "crictl inspectp"));
    const ps = JSON.parse(ok(await sl("inspectp", podId), "shimlab cri inspectp"));
    // SANDBOX_READY is 0, which shimlab's JSON leaves out.
    const pod: Seen["pod"] = { crictl: [pc.status.state, pc.status.runtimeHandler], shimlab: [ps.status.state ?? "SANDBOX_READY", ps.status.runtimeHandler] };

    const steps: Seen["steps"] = {};
    const app = ok(await cc("create", "--no-pull", podId, ctrJson("app", ["sleep", "4001"]), podJson), "crictl create").trim();
    steps.created = await views(app);
    ok(await cc("start", app), "crictl start");
    steps.started = await views(app);

    const cmd = ["sh", "-c", "echo out; exit 3"];
    // crictl itself exits 1 on any failure: the command's exit code is in its error message.
    const said = (r: { code: number | null; err: string }) => Number(/exited with (\d+)|exit code (\d+)/.exec(r.err)?.slice(1).find(Boolean) ?? (r.code === 0 ? 0 : -1));
    const sync = await cc("exec", "--sync", app, ...cmd);
    const stream = await cc("exec", app, ...cmd);
    const slExec = await sl("exec", app, "--", ...cmd);
    const exec: Seen["exec"] = { crictlSync: [said(sync), sync.out.trim()], crictlStream: [said(stream), stream.out.trim()], shimlab: [slExec.code ?? -1, slExec.out.trim()] };

    const quitter = ok(await cc("create", "--no-pull", podId, ctrJson("quitter", ["sh", "-c", "exit 7"]), podJson), "crictl create").trim();
    ok(await cc("start", quitter), "crictl start");
    await waitUntil("the quitter to exit", async () => (await views(quitter)).crictl[0] === "CONTAINER_EXITED");
    steps.exited = await views(quitter);

    // Two containers and the pause container: one shim, the one started for the pod.
    const shims = shimDaemons(fx.env.ctd, handler).map((s) => (argOf(s, "-id") === podId ? "the pod's" : `another: ${s.cmdline}`));

    // sleep is its container's pid 1 and ignores SIGTERM: -t 0 kills it.
    ok(await cc("stop", "-t", "0", app), "crictl stop");
    steps.stopped = await views(app);
    ok(await cc("rm", app, quitter), "crictl rm");
    ok(await cc("stopp", podId), "crictl stopp");
    ok(await cc("rmp", podId), "crictl rmp");
    const podGone = { crictl: (await cc("pods", "-q")).out.trim(), shimlab: (await sl("pods")).out.trim().split("\n").slice(1).join("\n") };
    await waitUntil("the pod's shim to exit", () => shimDaemons(fx.env.ctd, handler).length === 0);
    return { pod, steps, exec, shims, podGone };
  }

  const expected = (handler: Handler): Seen => ({
    pod: { crictl: ["SANDBOX_READY", handler], shimlab: ["SANDBOX_READY", handler] },
    steps: {
      created: { crictl: ["CONTAINER_CREATED", 0], shimlab: ["CONTAINER_CREATED", 0] },
      started: { crictl: ["CONTAINER_RUNNING", 0], shimlab: ["CONTAINER_RUNNING", 0] },
      exited: { crictl: ["CONTAINER_EXITED", 7], shimlab: ["CONTAINER_EXITED", 7] },
      stopped: { crictl: ["CONTAINER_EXITED", 137], shimlab: ["CONTAINER_EXITED", 137] },
    },
    // crictl 1.37 drops a failed ExecSync's stdout (it reports the error and exits), on any runtime.
    exec: { crictlSync: [3, ""], crictlStream: [3, "out"], shimlab: [3, "out"] },
    shims: ["the pod's"],
    podGone: { crictl: "", shimlab: "" },
  });

  it("handler runc: crictl's view is shimlab cri's at every step", async () => {
    seen.runc = await flow("runc");
    expect(seen.runc).toEqual(expected("runc"));
  }, 120_000);

  it("handler shimlab: the same, in one shim for the pod", async () => {
    seen.shimlab = await flow("shimlab");
    expect(seen.shimlab).toEqual(expected("shimlab"));
  }, 120_000);
});
