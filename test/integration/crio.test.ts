// CRI-O driving shimlab, as it drives containerd-shim-kata-v2: a private CRI-O
// (built from the Go module proxy, src/harness/peers/crio.ts) with shimlab as
// a `runtime_type = "vm"` handler. CRI-O runs `<shim> start` per container with
// an empty -address, speaks Task API over ttrpc to the address it prints, reads
// no events, and marks each container with its own annotations
// (io.kubernetes.cri-o.ContainerType, io.kubernetes.cri-o.SandboxID).
// The bar: every critest spec that passes on CRI-O's default handler (runc)
// passes on `shimlab`; and a two-container pod runs in one shim and one
// sandbox, on the host agent and in a QEMU VM, and leaves nothing.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CRIO_VERSION, crioPeer, type CrioPeer } from "../../src/harness/peers/crio";
import { Crio } from "../../src/harness/cri/crio";
import { startRegistry, registryBinary, type Registry } from "../../src/harness/registry/server";
import { CRITEST_SANDBOX_IMAGE, MIRRORED_REGISTRIES, pushStandinImages } from "../../src/harness/critest/images";
import { cniMissing, cniNetworkFor } from "../../src/harness/cri/cni";
import { critestBinaries, type CritestBinaries } from "../../src/harness/peers/cri-tools";
import { critest, type CritestRun } from "../../src/harness/critest/run";
import { regressions } from "../../src/harness/critest/report";
import { crioVmDecided, LEFT_OUT } from "../../src/harness/critest/specs";
import { Progress } from "../../src/harness/progress";
import { containerConfig, podConfig } from "../../src/harness/cri/pod";
import { ContainerState } from "../../src/gen/runtime.v1";
import { ensureImage, findKernel } from "../../src/guest-image";
import { qemuHarnessConfig } from "../../src/harness/qemu-config";
import { listProcesses, settle, SHIM_DAEMON_SCRIPT, MOCK_AGENT_SCRIPT } from "../../src/harness/leaks";
import { ARTIFACTS, missing, REQUIRE_ALL } from "../helpers/env";
import { cgroupExists } from "../../src/util/cgroup";
import { removeAllPods } from "../helpers/cri";

let skip = missing("root", "go", "gcc", "conmon", "busybox", "qemu-system-x86_64", "crun", "xz");
if (!skip) {
  const why = (registryBinary() ? null : "docker-registry") ?? cniMissing({ portMap: true }) ?? (findKernel() ? null : "linux-image-amd64");
  if (why && REQUIRE_ALL) throw new Error(`SHIMLAB_REQUIRE_ALL=1 but the CRI-O tests need ${why}`);
  if (why) skip = `needs ${why}`;
}

const REPORTS = path.join(ARTIFACTS, "critest");
const BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2";

describe.skipIf(skip)("CRI-O drives shimlab as a vm runtime", () => {
  let peer: CrioPeer;
  let bins: CritestBinaries;
  let work: string;
  let qemuConfig: string;
  let registry: Registry | null = null;

  beforeAll(async () => {
    peer = await crioPeer();
    bins = await critestBinaries();
    await ensureImage({ runc: true });
    work = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-crio-work-"));
    qemuConfig = path.join(work, "qemu.toml");
    fs.writeFileSync(qemuConfig, qemuHarnessConfig());
    registry = await startRegistry({ dir: path.join(work, "registry") });
    await pushStandinImages(registry.url);
    fs.mkdirSync(REPORTS, { recursive: true });
  }, 900_000);

  afterAll(async () => {
    await registry?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  /** A fresh CRI-O for fn, destroyed after it; nothing of it may be left running. */
  async function withCrio<T>(n: number, fn: (crio: Crio) => Promise<T>): Promise<T> {
    const crio = new Crio({
      peer,
      pauseImage: CRITEST_SANDBOX_IMAGE,
      cni: { ...cniNetworkFor(process.pid + 40 + n), portMap: true },
      shimlabHandlers: { shimlab: "", "shimlab-qemu": qemuConfig },
      mirror: { registries: MIRRORED_REGISTRIES, host: registry!.host },
    });
    try {
      await crio.start();
      return await fn(crio);
    } finally {
      const died = crio.death();
      const unremoved = await removeAllPods(crio.cri);
      const left = await settle(() => crio.leftovers().filter((p) => p.pid !== crio.pid), 10_000);
      const ids = crio.containerIds();
      await crio.destroy();
      // Soft: when fn failed, its error (critest's regressions, a timeout) is the one to read first,
      // and an assertion thrown here would replace it.
      expect
        .soft(left.map((p) => `${p.pid} ${p.cmdline}`), `shims, agents, conmons, VMs or containers left after removing every pod${unremoved.length ? ` (removal failed: ${unremoved.join("; ")})` : ""}${died ? `; ${died}` : ""}`)
        .toEqual([]);
      // cgroupfs CRI-O's crio-<id> and crio-conmon-<id> of every pod and container it made, the removed ones too.
      expect.soft(ids.flatMap((id) => [`/crio-${id}`, `/crio-conmon-${id}`]).filter(cgroupExists), "CRI-O's cgroups left").toEqual([]);
    }
  }

  const runs = new Map<string, CritestRun>();
  for (const handler of ["runc", "shimlab"]) {
    it(`critest on CRI-O ${CRIO_VERSION}, handler ${handler}`, async () => {
      await withCrio(runs.size, async (crio) => {
        const name = `crio-${handler}`;
        const run = await critest({ binaries: bins, socket: crio.socket, handler, reportDir: REPORTS, name, parallel: 4, attempts: 2, leftOut: LEFT_OUT, progress: new Progress(`critest ${name}`) });
        runs.set(handler, run);
        expect(run.exitCode, `critest ${name} was killed; see ${run.log}`).not.toBeNull();
        expect(run.results.filter((r) => /^(interrupted|aborted)$/.test(r.state)).map((r) => r.name)).toEqual([]);
        expect(crio.death(), "CRI-O died during critest").toBeNull();
        const count = (s: string) => run.results.filter((r) => r.state === s).length;
        process.stdout.write(`critest on CRI-O ${peer.version}, ${handler}: ${count("passed")} passed, ${count("failed")} failed, ${count("skipped")} skipped (${run.seconds.toFixed(0)} s)\n`);
        if (handler !== "runc") {
          const bar = runs.get("runc");
          expect(bar, "runc's run is the bar and must come first").toBeDefined();
          const missed = regressions(bar!.results, run.results);
          const excused = missed.filter((r) => crioVmDecided(r));
          process.stdout.write(`excused (CRI-O's own for vm handlers): ${excused.length}\n${excused.map((r) => `  ${r.name}: ${crioVmDecided(r)}`).join("\n")}\n`);
          expect(
            missed.filter((r) => !crioVmDecided(r)).map((r) => `${r.name}\n    ${r.state}: ${r.message}`),
            `specs that pass on CRI-O's runc and not on ${handler}`,
          ).toEqual([]);
        }
      });
    }, 1800_000);
  }

  for (const handler of ["shimlab", "shimlab-qemu"]) {
    it(`runs a two-container pod in one shim and one sandbox (${handler})`, async () => {
      await withCrio(2 + (handler === "shimlab" ? 0 : 1), async (crio) => {
        const cri = crio.cri;
        await cri.image.PullImage({ image: { image: BUSYBOX } });
        const config = podConfig({ name: `crio-pod-${handler}`, uid: `uid-crio-${handler}-${process.pid}`, network: "pod" });
        const { podSandboxId } = await cri.runtime.RunPodSandbox({ config, runtimeHandler: handler }, { timeoutMs: 240_000 });
        const ids: string[] = [];
        for (const name of ["first", "second"]) {
          const { containerId } = await cri.runtime.CreateContainer({
            podSandboxId,
            sandboxConfig: config,
            // The first is a bare sleep (pid 1 without a SIGTERM handler), the second ends on SIGTERM:
            // CRI-O waits out the stop timeout (StopPodSandbox: the call's whole deadline) before SIGKILL.
            config: containerConfig({ name, image: BUSYBOX, command: name === "first" ? ["sleep", "600"] : ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"], network: "pod" }),
          });
          await cri.runtime.StartContainer({ containerId });
          ids.push(containerId);
        }
        for (const c of ids) expect((await cri.runtime.ContainerStatus({ containerId: c })).status?.state).toBe(ContainerState.CONTAINER_RUNNING);

        // CRI-O's own annotations say which pod each bundle belongs to; the shim grouped by them.
        const bundle = (id: string) => JSON.parse(fs.readFileSync(path.join(crio.dir, "runroot", "overlay-containers", id, "userdata", "config.json"), "utf8"));
        const infra = bundle(podSandboxId).annotations;
        expect(infra["io.kubernetes.cri-o.ContainerType"]).toBe("sandbox");
        for (const c of ids) {
          const a = bundle(c).annotations;
          expect(a["io.kubernetes.cri-o.ContainerType"]).toBe("container");
          expect(a["io.kubernetes.cri-o.SandboxID"]).toBe(podSandboxId);
        }
        // One shim daemon and one sandbox for the pod: the daemon started for the infra
        // container serves the other two (`start` printed its address for them).
        const ours = listProcesses().filter((p) => crio.leftovers().some((l) => l.pid === p.pid));
        const daemons = ours.filter((p) => SHIM_DAEMON_SCRIPT.test(p.cmdline) && !/ (start|delete)$/.test(p.cmdline));
        expect(daemons.map((d) => d.cmdline.match(/-id (\S+)/)?.[1])).toEqual([podSandboxId]);
        const sandboxes = handler === "shimlab-qemu" ? ours.filter((p) => p.cmdline.includes("qemu-system")) : ours.filter((p) => MOCK_AGENT_SCRIPT.test(p.cmdline));
        expect(sandboxes, handler === "shimlab-qemu" ? "QEMU processes" : "host agents").toHaveLength(1);

        // Both containers share the pod's network namespace (and, in the VM, the guest's kernel).
        const run = async (id: string, cmd: string) => {
          const r = await cri.runtime.ExecSync({ containerId: id, cmd: ["sh", "-c", cmd], timeout: 30 });
          expect(r.exitCode, `${cmd}: ${r.stderr.toString()}`).toBe(0);
          return r.stdout.toString().trim();
        };
        const nets = await Promise.all(ids.map((c) => run(c, "readlink /proc/self/ns/net")));
        expect(nets[0]).toBe(nets[1]);
        const boots = await Promise.all(ids.map((c) => run(c, "cat /proc/sys/kernel/random/boot_id")));
        const hostBoot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
        expect(boots[0]).toBe(boots[1]);
        if (handler === "shimlab-qemu") expect(boots[0]).not.toBe(hostBoot);
        else expect(boots[0]).toBe(hostBoot);

        // An exit reaches CRI-O through Wait: sleep, pid 1 without a SIGTERM handler, outlives the
        // stop signal and dies of the SIGKILL after the timeout; the other container runs on.
        await cri.runtime.StopContainer({ containerId: ids[0], timeout: 2 });
        const stopped = (await cri.runtime.ContainerStatus({ containerId: ids[0] })).status;
        expect(stopped?.state).toBe(ContainerState.CONTAINER_EXITED);
        expect(stopped?.exitCode).toBe(137);
        expect((await cri.runtime.ContainerStatus({ containerId: ids[1] })).status?.state).toBe(ContainerState.CONTAINER_RUNNING);

        await cri.runtime.StopPodSandbox({ podSandboxId });
        await cri.runtime.RemovePodSandbox({ podSandboxId });
        expect((await cri.runtime.ListPodSandbox({})).items).toEqual([]);
      });
    }, 600_000);
  }
});
