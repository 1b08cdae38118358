// containerd 2.x's Sandbox API through a real containerd 2.1 (whatever
// SHIMLAB_CONTAINERD says: the API is 2.x's): a CRI runtime with
// `sandboxer = "shim"` makes no pause container, starts shimlab's shim for the
// pod and drives its sandbox service (CreateSandbox, StartSandbox...), then
// creates the pod's containers as tasks on that shim. Observed with crictl, as
// an operator would, beside the same pod on sandboxer = "podsandbox" (CRI's
// pause container, grouped by annotations): the same exec and exit codes, the
// same hostname, DNS and shared /dev/shm, one shim, and nothing left after
// crictl rmp; but no pause container, in containerd or in the process list.
// On the host agent and in a QEMU VM, both on a CNI network: containerd 2.1.9
// panics on a hostNetwork pod with the shim sandboxer (difference
// shim-sandboxer-host-network). And containerd restarts while such a pod runs.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { crictlBinary } from "../../src/harness/peers/cri-tools";
import { resolveContainerd } from "../../src/harness/peers/containerd";
import { runCommand } from "../../src/harness/shim-runner";
import { cniMissing, cniNetworkFor } from "../../src/harness/cri/cni";
import { descendants, listProcesses, runProcesses } from "../../src/harness/leaks";
import { CRI_NAMESPACE } from "../../src/harness/cri/images";
import { ensureImage, findKernel } from "../../src/guest-image";
import { qemuHarnessConfig } from "../../src/harness/qemu-config";
import { missing, REQUIRE_ALL } from "../helpers/env";
import { useCriContainerd } from "../helpers/cri-fixture";
import { argOf, shimDaemons, waitUntil } from "../helpers/cri";
import { containerConfig, podConfig } from "../../src/harness/cri/pod";
import { readTrace, SANDBOX_SERVICE } from "../../src/trace/model";

let skip = missing("root", "containerd", "ctr", "runc", "busybox", "qemu-system-x86_64", "crun", "xz");
if (!skip) {
  const why = cniMissing() ?? (findKernel() ? null : "linux-image-amd64");
  if (why && REQUIRE_ALL) throw new Error(`SHIMLAB_REQUIRE_ALL=1 but the Sandbox API test needs ${why}`);
  if (why) skip = `needs ${why}`;
}

const net = cniNetworkFor(process.pid + 11);
const subnetPrefix = net.subnet.replace(/\.0\/\d+$/, ".");
/** The reference (CRI's pause container), the Sandbox API on the host agent, and in a VM. */
const HANDLERS = { shimlab: "podsandbox", "shimlab-sbx": "shim", "shimlab-qemu-sbx": "shim" } as const;
type Handler = keyof typeof HANDLERS;

interface Seen {
  pod: { state: string; runtime: string; ipInSubnet: boolean };
  /** crictl ps -a: names and states, sorted. */
  containers: string[];
  /** containerd's own containers in k8s.io: the app containers, and the pod's id if a pause container exists. */
  containerdContainers: string[];
  /** containerd's sandbox store holds the pod whichever sandboxer made it. */
  inSandboxStore: boolean;
  /** Below the pod's one shim: a pause process, and shimlab's sandbox-init. */
  pauseProcess: boolean;
  sandboxInit: boolean;
  shims: number;
  exec: [number, string];
  quitterExit: number;
  stoppedExit: number;
  hostnames: string[];
  etcHostname: string;
  resolv: string;
  /** One container writes the pod's /dev/shm, the other reads it. */
  shmShared: boolean;
  /** Both containers in one kernel that is not the host's (a VM), or the host's. */
  inGuest: boolean;
  gone: { pods: string; containers: string; shims: number; podProcesses: string[] };
}

describe.skipIf(skip)("Sandbox API (sandboxer = shim) on containerd 2.1, beside podsandbox", () => {
  let work: string;
  let crictl: string;
  const seen: Partial<Record<Handler, Seen>> = {};
  const hostBoot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  const fx = useCriContainerd({
    startTimeoutMs: 600_000,
    options: async () => {
      work = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-sandbox-api-"));
      await ensureImage({ runc: true });
      const qemuCfg = path.join(work, "qemu.toml");
      fs.writeFileSync(qemuCfg, qemuHarnessConfig());
      return {
        peer: await resolveContainerd("2.1"),
        cni: net,
        // shimlab's own trace of what containerd calls (the last test reads it).
        env: { SHIMLAB_TRACE: path.join(work, "trace") + "/" },
        shimlabHandlers: { "shimlab-sbx": { sandboxer: "shim" }, "shimlab-qemu-sbx": { configPath: qemuCfg, sandboxer: "shim" } },
      };
    },
    dirs: () => [work],
  });

  beforeAll(async () => {
    crictl = await crictlBinary();
  }, 600_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const run = async (bin: string, args: string[], timeoutMs = 120_000) => {
    const r = await runCommand(bin, args, { timeoutMs });
    return { code: r.code, out: r.stdout.toString(), err: r.stderr.toString() };
  };
  const cc = (...args: string[]) => {
    const config = path.join(work, "crictl.yaml");
    const endpoint = `unix://${fx.env.ctd.address}`;
    fs.writeFileSync(config, `runtime-endpoint: ${endpoint}\nimage-endpoint: ${endpoint}\ntimeout: 120\n`);
    return run(crictl, ["--config", config, ...args]);
  };
  const ok = (r: { code: number | null; out: string; err: string }, what: string) => {
    expect(r.code, `${what}: ${r.err}`).toBe(0);
    return r.out;
  };
  const podShim = (podId: string) => shimDaemons(fx.env.ctd, "shimlab").find((s) => argOf(s, "-id") === podId);
  const qemusUnder = (dir: string) => listProcesses().filter((p) => p.cmdline.includes("qemu-system") && p.cmdline.includes(dir));
  const execSync = async (id: string, cmd: string[]) => {
    const r = await fx.env.cri.runtime.ExecSync({ containerId: id, cmd, timeout: 60 });
    return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  };
  const status = async (id: string) => JSON.parse(ok(await cc("inspect", "-o", "json", id), "crictl inspect")).status;

  function files(handler: Handler) {
    const pod = path.join(work, `pod-${handler}.json`);
    fs.writeFileSync(
      pod,
      JSON.stringify({
        metadata: { name: `sbx-${handler}`, namespace: "default", uid: `uid-sbx-${handler}-${process.pid}`, attempt: 0 },
        hostname: `h-${handler}`,
        dns_config: { servers: ["10.9.9.9"], searches: ["sbx.test"], options: ["ndots:2"] },
        linux: { cgroup_parent: fx.env.ctd.cgroupParent, security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } } },
      }),
    );
    const ctr = (name: string, command: string[]) => {
      const f = path.join(work, `${handler}-${name}.json`);
      fs.writeFileSync(f, JSON.stringify({ metadata: { name }, image: { image: fx.env.images.busybox }, command, linux: { security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } } } }));
      return f;
    };
    return { pod, ctr };
  }

  async function flow(handler: Handler): Promise<Seen> {
    const f = files(handler);
    const podId = ok(await cc("runp", "--runtime", handler, f.pod), "crictl runp").trim();
    const ps = JSON.parse(ok(await cc("inspectp", "-o", "json", podId), "crictl inspectp")).status;
    const pod = { state: ps.state, runtime: ps.runtimeHandler, ipInSubnet: String(ps.network?.ip ?? "").startsWith(subnetPrefix) };

    const apps: string[] = [];
    for (const name of ["web", "side"]) {
      const id = ok(await cc("create", "--no-pull", podId, f.ctr(name, ["sleep", "600"]), f.pod), "crictl create").trim();
      ok(await cc("start", id), "crictl start");
      apps.push(id);
    }
    const quitter = ok(await cc("create", "--no-pull", podId, f.ctr("quitter", ["sh", "-c", "exit 7"]), f.pod), "crictl create").trim();
    ok(await cc("start", quitter), "crictl start");
    await waitUntil("the quitter to exit", async () => (await status(quitter)).state === "CONTAINER_EXITED", 60_000);

    const e = await execSync(apps[0], ["sh", "-c", "echo out; exit 3"]);
    const hostnames = [(await execSync(apps[0], ["hostname"])).out.trim(), (await execSync(apps[1], ["hostname"])).out.trim()];
    const etcHostname = (await execSync(apps[1], ["cat", "/etc/hostname"])).out;
    const resolv = (await execSync(apps[1], ["cat", "/etc/resolv.conf"])).out;
    await execSync(apps[0], ["sh", "-c", "echo shared > /dev/shm/sbx"]);
    const shmShared = (await execSync(apps[1], ["cat", "/dev/shm/sbx"])).out.trim() === "shared";
    const boots = [(await execSync(apps[0], ["cat", "/proc/sys/kernel/random/boot_id"])).out.trim(), (await execSync(apps[1], ["cat", "/proc/sys/kernel/random/boot_id"])).out.trim()];

    const containers = JSON.parse(ok(await cc("ps", "-a", "-o", "json"), "crictl ps -a"))
      .containers.filter((c: { podSandboxId: string }) => c.podSandboxId === podId)
      .map((c: { metadata: { name: string }; state: string }) => `${c.metadata.name} ${c.state}`)
      .sort();
    const ctrLs = await fx.env.ctd.ctr(["containers", "ls", "-q"], { namespace: CRI_NAMESPACE, check: true });
    const ours = new Set([podId, ...apps, quitter]);
    const containerdContainers = ctrLs.out.split("\n").filter((id) => ours.has(id)).map((id) => (id === podId ? "the pod" : apps.includes(id) ? "app" : "quitter")).sort();
    const sbLs = await fx.env.ctd.ctr(["sandboxes", "ls"], { namespace: CRI_NAMESPACE, check: true });
    const shim = podShim(podId);
    const below = shim ? descendants(shim.pid) : [];
    const shims = shimDaemons(fx.env.ctd, "shimlab").length;

    ok(await cc("stop", "-t", "0", apps[0]), "crictl stop");
    const stoppedExit = (await status(apps[0])).exitCode;
    const quitterExit = (await status(quitter)).exitCode;

    ok(await cc("stopp", podId), "crictl stopp");
    ok(await cc("rmp", podId), "crictl rmp");
    await waitUntil("the pod's shim to exit", () => !podShim(podId), 30_000);
    const gone = {
      pods: (await cc("pods", "-q")).out.trim(),
      containers: (await cc("ps", "-a", "-q")).out.trim(),
      shims: shimDaemons(fx.env.ctd, "shimlab").length,
      podProcesses: below.map((p) => p.pid).filter((pid) => fs.existsSync(`/proc/${pid}`)).map(String),
    };
    return {
      pod,
      containers,
      containerdContainers,
      inSandboxStore: sbLs.out.split("\n").some((l) => l.split(/\s+/)[0] === podId),
      pauseProcess: below.some((p) => /(^|\/|\s)pause(\s|$)/.test(p.cmdline)),
      sandboxInit: below.some((p) => p.cmdline === "./sandbox-init"),
      shims,
      exec: [e.code, e.out.trim()],
      quitterExit,
      stoppedExit,
      hostnames,
      etcHostname,
      resolv,
      shmShared,
      inGuest: boots[0] === boots[1] && /^[0-9a-f-]{36}$/.test(boots[0]) && boots[0] !== hostBoot,
      gone,
    };
  }

  const expected = (handler: Handler): Seen => {
    const shim = HANDLERS[handler] === "shim";
    const vm = handler === "shimlab-qemu-sbx";
    return {
      pod: { state: "SANDBOX_READY", runtime: handler, ipInSubnet: true },
      containers: ["quitter CONTAINER_EXITED", "side CONTAINER_RUNNING", "web CONTAINER_RUNNING"],
      // The pause container is a containerd container of the pod's id; the shim sandboxer makes none.
      containerdContainers: shim ? ["app", "app", "quitter"] : ["app", "app", "quitter", "the pod"],
      inSandboxStore: true,
      pauseProcess: !shim,
      // A VM's processes are in the guest: below the shim there is QEMU.
      sandboxInit: shim && !vm,
      shims: 1,
      exec: [3, "out"],
      quitterExit: 7,
      stoppedExit: 137,
      hostnames: [`h-${handler}`, `h-${handler}`],
      etcHostname: `h-${handler}\n`,
      resolv: "search sbx.test\nnameserver 10.9.9.9\noptions ndots:2\n",
      // In a VM each container's /dev/shm is a tmpfs of the guest's own (guest-mounts.ts), whichever sandboxer.
      shmShared: !vm,
      inGuest: vm,
      gone: { pods: "", containers: "", shims: 0, podProcesses: [] },
    };
  };

  it("sandboxer = podsandbox (the reference): a pause container holds the pod", async () => {
    seen.shimlab = await flow("shimlab");
    expect(seen.shimlab).toEqual(expected("shimlab"));
  }, 240_000);

  it("sandboxer = shim, host agent: the same pod through CreateSandbox/StartSandbox, with no pause container", async () => {
    seen["shimlab-sbx"] = await flow("shimlab-sbx");
    expect(seen["shimlab-sbx"]).toEqual(expected("shimlab-sbx"));
  }, 240_000);

  it("sandboxer = shim in a QEMU VM: StartSandbox boots the VM, both containers run in its guest", async () => {
    seen["shimlab-qemu-sbx"] = await flow("shimlab-qemu-sbx");
    expect(seen["shimlab-qemu-sbx"]).toEqual(expected("shimlab-qemu-sbx"));
    expect(qemusUnder(fx.env.ctd.dir)).toEqual([]);
  }, 300_000);

  it("containerd restarts while a shim-sandboxer pod runs: the pod and its containers are still managed after", async () => {
    const f = files("shimlab-sbx");
    const signal = fs.mkdtempSync(path.join(work, "signal-"));
    const podId = ok(await cc("runp", "--runtime", "shimlab-sbx", f.pod), "crictl runp").trim();
    const app = ok(await cc("create", "--no-pull", podId, f.ctr("app", ["sleep", "600"]), f.pod), "crictl create").trim();
    ok(await cc("start", app), "crictl start");
    // A container that exits (7) when told, through a volume: told while containerd is down.
    const quitterJson = path.join(work, "restart-quitter.json");
    fs.writeFileSync(
      quitterJson,
      JSON.stringify({
        metadata: { name: "quitter" },
        image: { image: fx.env.images.busybox },
        command: ["sh", "-c", "while [ ! -e /signal/go ]; do sleep 0.1; done; exit 7"],
        mounts: [{ container_path: "/signal", host_path: signal }],
        linux: { security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } } },
      }),
    );
    const quitter = ok(await cc("create", "--no-pull", podId, quitterJson, f.pod), "crictl create").trim();
    ok(await cc("start", quitter), "crictl start");
    const shimBefore = podShim(podId)?.pid;
    expect(shimBefore).toBeGreaterThan(0);

    await fx.env.ctd.kill();
    fs.writeFileSync(path.join(signal, "go"), "");
    await waitUntil("the quitter to exit while containerd is down", () => !runProcesses({ cgroupParents: [fx.env.ctd.cgroupParent] }).some((p) => p.cmdline.includes("/signal/go")), 30_000);
    await fx.env.ctd.start();
    // CRI answers Unavailable ("not initialized yet") until it has recovered its pods.
    await waitUntil("CRI to serve again", () => fx.env.cri.runtime.ListPodSandbox({}).then(() => true, () => false), 60_000);

    const after = {
      // The same shim, reconnected: containerd loaded the sandbox's bundle and asked its status.
      shim: podShim(podId)?.pid === shimBefore,
      pod: JSON.parse(ok(await cc("inspectp", "-o", "json", podId), "crictl inspectp")).status.state,
      app: (await status(app)).state,
      quitter: await waitUntil("the quitter's exit to be seen", async () => {
        const st = await status(quitter);
        return st.state === "CONTAINER_EXITED" ? `${st.state} ${st.exitCode}` : null;
      }, 30_000),
      exec: (await execSync(app, ["sh", "-c", "exit 3"])).code,
      // A container made after the restart still joins the pod's shim (CRI recovered the sandbox's endpoint).
      late: await (async () => {
        const id = ok(await cc("create", "--no-pull", podId, f.ctr("late", ["sleep", "600"]), f.pod), "crictl create").trim();
        ok(await cc("start", id), "crictl start");
        return { state: (await status(id)).state, hostname: (await execSync(id, ["hostname"])).out.trim(), shims: shimDaemons(fx.env.ctd, "shimlab").length };
      })(),
    };
    ok(await cc("stopp", podId), "crictl stopp");
    ok(await cc("rmp", podId), "crictl rmp");
    await waitUntil("the pod's shim to exit", () => !podShim(podId), 30_000);
    expect(after).toEqual({
      shim: true,
      pod: "SANDBOX_READY",
      app: "CONTAINER_RUNNING",
      quitter: "CONTAINER_EXITED 7",
      exec: 3,
      late: { state: "CONTAINER_RUNNING", hostname: "h-shimlab-sbx", shims: 1 },
    });
    expect((await cc("pods", "-q")).out.trim()).toBe("");
  }, 240_000);

  // What containerd 2.1's CRI really asks of a shim-sandboxer pod's shim, from shimlab's trace,
  // against the flow of containerd's docs/sandbox-api.md (written after 2.1): the README's list.
  it("the calls containerd 2.1 makes for a shim-sandboxer pod's life, in order", async () => {
    const cri = fx.env.cri.runtime;
    const config = podConfig({ name: "calls", uid: `uid-sbx-calls-${process.pid}`, cgroupParent: fx.env.ctd.cgroupParent, network: "pod" });
    const { podSandboxId } = await cri.RunPodSandbox({ config, runtimeHandler: "shimlab-sbx" });
    const command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"];
    const { containerId } = await cri.CreateContainer({ podSandboxId, sandboxConfig: config, config: containerConfig({ name: "c", image: fx.env.images.busybox, command, network: "pod" }) });
    await cri.StartContainer({ containerId });
    await cri.StopContainer({ containerId, timeout: 10 });
    await cri.RemoveContainer({ containerId });
    await cri.StopPodSandbox({ podSandboxId });
    await cri.RemovePodSandbox({ podSandboxId });
    await waitUntil("the pod's shim to exit", () => !podShim(podSandboxId), 30_000);

    const name = (id: unknown) => (id === podSandboxId ? "pod" : id === containerId ? "c" : String(id));
    const calls = readTrace(path.join(work, "trace"))
      .filter((r) => (r.kind === "rpc.call" && r.from === "containerd") || r.kind === "exec.call")
      .filter((r) => {
        const req = (r.req ?? {}) as { id?: string; sandboxId?: string };
        return [req.id, req.sandboxId, r.task].some((x) => x === podSandboxId || x === containerId);
      })
      .map((r) => {
        const req = (r.req ?? {}) as { id?: string; sandboxId?: string };
        if (r.kind === "exec.call") return `exec ${r.action} ${name(r.task)}`;
        return r.service === SANDBOX_SERVICE ? `Sandbox.${r.method}` : `${r.method} ${name(req.id)}`;
      });
    const seq = calls.join(" | ");
    const at = (c: string) => calls.indexOf(c);
    const sandboxCalls = (from: number) => [...new Set(calls.slice(from).filter((c) => c.startsWith("Sandbox.")))].sort();
    // As the docs draw it: the shim started for the pod, CreateSandbox, StartSandbox; the pod's container a task on it.
    expect(calls.slice(0, 3), seq).toEqual(["exec start pod", "Sandbox.CreateSandbox", "Sandbox.StartSandbox"]);
    expect(calls.filter((c) => c.startsWith("exec ")), seq).toEqual(["exec start pod", "exec delete pod"]);
    expect(calls.filter((c) => / pod$/.test(c) && !c.startsWith("exec ")), "no task of the pod's own id (no pause container)").toEqual([]);
    // Not in the docs' flow: CRI's exit monitor waits on the sandbox from the start, once.
    expect(calls.filter((c) => c === "Sandbox.WaitSandbox"), seq).toHaveLength(1);
    expect(at("Sandbox.WaitSandbox")).toBeGreaterThan(at("Sandbox.StartSandbox"));
    expect(at("Sandbox.WaitSandbox")).toBeLessThan(at("Create c"));
    // CreateContainer asks Platform (and status) before the task exists, as the docs say.
    expect(at("Sandbox.Platform")).toBeGreaterThan(at("Sandbox.StartSandbox"));
    expect(at("Sandbox.Platform")).toBeLessThan(at("Create c"));
    // Unlike the docs (and containerd's main since): no TaskService.Shutdown after the sandboxed task's Delete.
    expect(calls.filter((c) => c.startsWith("Shutdown ")), seq).toEqual([]);
    expect(calls.filter((c) => c === "Delete c")).toHaveLength(1);
    // StopPodSandbox and RemovePodSandbox: only status, StopSandbox and ShutdownSandbox after the task is gone,
    // then the shim binary's `delete` for the pod's bundle, which the docs do not mention.
    expect(sandboxCalls(at("Delete c")), seq).toEqual(["Sandbox.SandboxStatus", "Sandbox.ShutdownSandbox", "Sandbox.StopSandbox"]);
    expect(at("Sandbox.StopSandbox")).toBeLessThan(at("Sandbox.ShutdownSandbox"));
    expect(calls.at(-2)).toBe("Sandbox.ShutdownSandbox");
    expect(calls.at(-1)).toBe("exec delete pod");
    // Never asked in a pod's life: PingSandbox, SandboxMetrics (ListPodSandboxStats asks that one).
    expect(calls.filter((c) => /PingSandbox|SandboxMetrics/.test(c))).toEqual([]);
  }, 120_000);
});
