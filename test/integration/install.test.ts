// `shimlab install` on the tests' own containerd (SHIMLAB_CONTAINERD's: a version 2
// config for 1.6/1.7, version 3 for 2.x): its config edited by
// install before it starts, its PATH holding only the installed launcher (not
// the checkout's bin/), then `ctr run` through shimlab and `uninstall`.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Containerd, REPO_ROOT } from "../../src/harness/containerd";
import { runCommand } from "../../src/harness/shim-runner";
import { install, readManifest, uninstall, SANDBOXER_SHIM_NAME } from "../../src/install/install";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";
import { forceRemove } from "../helpers/ctr";
import { CriClient } from "../../src/harness/cri/client";
import { containerConfig, hostNetworkPod, podConfig } from "../../src/harness/cri/pod";
import { startCriContainerd, type CriContainerd } from "../../src/harness/cri/containerd";
import { cniMissing, cniNetworkFor } from "../../src/harness/cri/cni";
import { CRI_NAMESPACE } from "../../src/harness/cri/images";
import { currentContainerd, type ContainerdPeer } from "../../src/harness/peers/containerd";
import { argOf, removeAllPods, shimDaemons, waitUntil } from "../helpers/cri";
import { buildOciArchive } from "../../src/harness/oci-image";
import { parse } from "smol-toml";
import { CRI_PLUGIN } from "../../src/install/containerd-config";

const SANDBOX_IMAGE = "docker.io/library/shimlab-pause:1";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const RUNTIME = "io.containerd.shimlab.v2";

describe.skipIf(skip)("shimlab install on the test's containerd", () => {
  let ctd: Containerd;
  let rootfs: string;
  let prefix: string;
  let configBefore = "";

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    prefix = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-prefix-"));
    ctd = new Containerd({
      // CRI on, so that containerd loads the runtimes table we add.
      cri: true,
      // CRI's pause image, built locally (no registry here) and imported below.
      pluginConfig: (peer) =>
        peer.configVersion === 3
          ? `[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = "${SANDBOX_IMAGE}"\n`
          : `[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "${SANDBOX_IMAGE}"\n`,
      shimBinDir: path.join(prefix, "bin"),
      prepareConfig: (cfg) => {
        configBefore = fs.readFileSync(cfg, "utf8");
        // As the DaemonSet installs: Node and the build copied under the prefix, nothing run from the checkout.
        install({ prefix, containerdConfig: cfg, repoRoot: REPO_ROOT, copy: true });
      },
    });
    await ctd.start();
  });

  afterAll(async () => {
    await ctd?.destroy();
    removeCgroupDirs(ctd.cgroupParent);
    fs.rmSync(prefix, { recursive: true, force: true });
  });

  afterEach(async () => {
    await expectNoLeaks([ctd.address], [ctd.dir], ctd.cgroupParent);
  });

  it("containerd reads the installed runtime where CRI looks for it", async () => {
    const dump = await runCommand(ctd.peer.containerd, ["--config", ctd.configPath, "config", "dump"]);
    expect(dump.code).toBe(0);
    // Where CRI reads runtimes: io.containerd.grpc.v1.cri (1.x), io.containerd.cri.v1.runtime (2.x).
    const cri = (parse(dump.stdout.toString()) as any).plugins[CRI_PLUGIN[ctd.peer.configVersion]];
    const table = cri.containerd.runtimes.shimlab;
    expect(table.runtime_type).toBe("io.containerd.shimlab.v2");
    expect(table.runtime_path).toBe(path.join(prefix, "bin", "containerd-shim-shimlab-v2"));
    expect(table.options.ConfigPath).toBe(path.join(prefix, "share", "shimlab", "config.toml"));
    // The CRI plugin loaded with it.
    const plugins = await ctd.ctr(["plugins", "ls"]);
    expect(plugins.out).toMatch(ctd.peer.configVersion === 3 ? /io\.containerd\.cri\.v1\s+runtime\s+\S+\s+ok/ : /io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/);
  });

  it("runs ctr run through the installed launcher, with the installed shimlab config", async () => {
    // containerd's PATH has the prefix, not the checkout's bin/.
    expect(ctd.env().PATH!.split(":")).not.toContain(path.join(REPO_ROOT, "bin"));
    const cfg = path.join(prefix, "share", "shimlab", "config.toml");
    const r = await ctd.ctr(["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", cfg, "--rootfs", rootfs, "inst1", "/bin/echo", "hello from the installed shim"]);
    expect(r.err).toBe("");
    expect(r.out).toBe("hello from the installed shim\n");
    expect(r.code).toBe(0);
  });

  it("records the installed launcher as the task's shim binary", async () => {
    const id = "inst2";
    try {
      const r = await ctd.ctr(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, id, "/bin/sleep", "300"]);
      expect(r.code).toBe(0);
      const bundle = path.join(ctd.state, "io.containerd.runtime.v2.task", "default", id);
      const binPath = fs.readFileSync(path.join(bundle, "shim-binary-path"), "utf8");
      expect(binPath).toBe(path.join(prefix, "bin", "containerd-shim-shimlab-v2"));
      // The shim daemon runs the copied Node on the copied build's bundle, as the copied native launcher starts it.
      const pid = Number(fs.readFileSync(path.join(bundle, "shim.pid"), "utf8"));
      expect(fs.readlinkSync(`/proc/${pid}/exe`)).toBe(path.join(prefix, "lib", "shimlab", "node"));
      expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1]).toBe(path.join(prefix, "lib", "shimlab", "dist", "bundle", "shim-main.js"));
      expect(fs.readFileSync(path.join(prefix, "bin", "containerd-shim-shimlab-v2"), "utf8")).toContain(`exec '${path.join(prefix, "lib", "shimlab", "bin", "containerd-shim-shimlab-v2")}'`);
      // The copy carries the contract its reports cite (docs/contract/<page>.md#<id>), Markdown and HTML.
      expect(fs.readFileSync(path.join(prefix, "lib", "shimlab", "docs", "contract", "task-api.md"), "utf8")).toContain('<a id="kill.unknown-container"></a>');
      expect(fs.readFileSync(path.join(prefix, "lib", "shimlab", "dist", "docs", "contract", "task-api.html"), "utf8")).toContain('id="kill.unknown-container"');
    } finally {
      await forceRemove(ctd, id);
    }
  });

  it("runs a pod sandbox through CRI with runtime handler shimlab, which hands the shim the installed ConfigPath", async () => {
    const archive = path.join(ctd.dir, "pause.tar");
    buildOciArchive(rootfs, archive, { name: SANDBOX_IMAGE, entrypoint: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"] });
    const imp = await ctd.ctr(["images", "import", archive], { namespace: "k8s.io" });
    expect(imp.code, imp.err).toBe(0);
    const criClient = new CriClient(ctd.address);
    // As the kubelet does for a pod with runtimeClassName: <handler>.
    const cri = {
      runPodSandbox: async (name: string, handler: string) =>
        (await criClient.runtime.RunPodSandbox({ config: hostNetworkPod({ name }), runtimeHandler: handler })).podSandboxId,
      removePodSandbox: async (id: string) => {
        await criClient.runtime.StopPodSandbox({ podSandboxId: id });
        await criClient.runtime.RemovePodSandbox({ podSandboxId: id });
      },
      close: () => criClient.close(),
    };
    const cfgPath = path.join(prefix, "share", "shimlab", "config.toml");
    const good = fs.readFileSync(cfgPath, "utf8");
    try {
      // CRI's pod sandbox spec fails under runc on these machines (runc's own shim fails alike:
      // "can't get final child's PID from pipe"), so the installed config has the agent run it as a host process.
      expect(good).toContain('runtime = "auto"');
      fs.writeFileSync(cfgPath, good.replace('runtime = "auto"', 'runtime = "host"'));
      // As the kubelet does for a pod with runtimeClassName: shimlab.
      const id = await cri.runPodSandbox("pod-a", "shimlab");
      const bundle = path.join(ctd.state, "io.containerd.runtime.v2.task", "k8s.io", id);
      expect(fs.readFileSync(path.join(bundle, "shim-binary-path"), "utf8")).toBe(path.join(prefix, "bin", "containerd-shim-shimlab-v2"));
      await cri.removePodSandbox(id);
      // The shim reads the config CRI passes (options.ConfigPath): break it, and the next pod says so.
      fs.writeFileSync(cfgPath, 'hypervisor = "warp-drive"\n');
      const err = await cri.runPodSandbox("pod-b", "shimlab").then(
        (pid) => (cri.removePodSandbox(pid), "started"),
        (e: Error) => e.message,
      );
      expect(err).toContain(`${cfgPath}: hypervisor = "warp-drive"`);
      // An unknown handler is CRI's own refusal, for contrast.
      await expect(cri.runPodSandbox("pod-c", "nope")).rejects.toThrow(/no runtime for "nope" is configured/);
    } finally {
      fs.writeFileSync(cfgPath, good);
      cri.close();
    }
  });

  it("uninstall gives containerd its config back, and containerd still starts on it", async () => {
    uninstall({ prefix });
    expect(fs.readFileSync(ctd.configPath, "utf8")).toBe(configBefore);
    const dump = await runCommand(ctd.peer.containerd, ["--config", ctd.configPath, "config", "dump"]);
    expect(dump.code).toBe(0);
    expect(dump.stdout.toString()).not.toContain("runtimes.shimlab");
    expect(dump.stdout.toString()).not.toContain("io.containerd.shimlab.v2");
    expect(fs.readdirSync(path.join(prefix, "lib"))).toEqual([]);
  });
});

// `shimlab install --sandboxer shim` on a containerd 2.x (the matrix's 2.1 run;
// 1.6 and 1.7 have no sandboxer, and install refuses it on their version 2
// config): a CNI pod made through the installed runtime has no pause container
// and its shim was started from the installed shim-sandboxer launcher, which
// hands the daemon the installed config (containerd 2.1 cannot pass it as the
// runtime's options there); a broken config fails the next pod, naming it.
// On a CNI network: 2.1.9 panics on a hostNetwork pod with the shim sandboxer.
const sbxSkip = skip ?? cniMissing();
describe.skipIf(sbxSkip)("shimlab install --sandboxer shim on the test's containerd", () => {
  let peer: ContainerdPeer;
  let env: CriContainerd | null = null;
  let prefix: string;
  let configBefore = "";
  const net = cniNetworkFor(process.pid + 13);
  const HANDLER = "shimlab-installed";

  beforeAll(async () => {
    peer = await currentContainerd();
    prefix = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-prefix-sbx-"));
    if (peer.configVersion !== 3) return;
    env = await startCriContainerd({
      busyboxRootfs: busyboxRootfs(),
      peer,
      cni: net,
      shimBinDir: path.join(prefix, "bin"),
      prepareConfig: (cfg) => {
        configBefore = fs.readFileSync(cfg, "utf8");
        install({ prefix, containerdConfig: cfg, repoRoot: REPO_ROOT, runtimeName: HANDLER, sandboxer: "shim" });
      },
    });
  }, 120_000);

  afterAll(async () => {
    if (env) {
      await removeAllPods(env.cri);
      const cg = env.ctd.cgroupParent;
      await env.destroy();
      removeCgroupDirs(cg);
    }
    if (prefix) {
      // Only what this describe installed: without a manifest, uninstall would edit /etc/containerd/config.toml.
      if (readManifest(prefix)) uninstall({ prefix });
      fs.rmSync(prefix, { recursive: true, force: true });
    }
  });

  afterEach(async () => {
    if (!env) return;
    await removeAllPods(env.cri);
    await expectNoLeaks([env.ctd.dir], [env.ctd.dir], env.ctd.cgroupParent);
  });

  it("on containerd 1.x: refuses, leaving this containerd's config as it was", async (ctx) => {
    if (peer.configVersion === 3) return ctx.skip("containerd 2.x: the next test installs it");
    const cfg = path.join(prefix, "config.toml");
    // The config the test's containerd is started with (written here, nothing started).
    fs.writeFileSync(cfg, new Containerd({ cri: true, peer, dir: path.join(prefix, "ctd") }).config());
    const text = fs.readFileSync(cfg, "utf8");
    expect(() => install({ prefix, containerdConfig: cfg, repoRoot: REPO_ROOT, sandboxer: "shim" })).toThrow(/sandboxer = "shim" is a containerd 2\.x setting \(config version 3\); this config is version 2/);
    expect(fs.readFileSync(cfg, "utf8")).toBe(text);
    expect(fs.existsSync(path.join(prefix, "bin"))).toBe(false);
  });

  it("on containerd 2.x: a pod through the installed runtime has no pause container, and its shim runs from the installed launcher with the installed config", async (ctx) => {
    if (!env) return ctx.skip(`containerd ${peer.series} has no sandboxer`);
    const { cri, ctd, images } = env;
    const launcher = path.join(prefix, "bin", SANDBOXER_SHIM_NAME);
    const shimConfig = path.join(prefix, "share", "shimlab", "config.toml");
    // What containerd read: the launcher by path, the shim sandboxer, no options table.
    const dump = await runCommand(ctd.peer.containerd, ["--config", ctd.configPath, "config", "dump"]);
    expect(dump.code).toBe(0);
    const table = (parse(dump.stdout.toString()) as any).plugins[CRI_PLUGIN[3]].containerd.runtimes[HANDLER];
    expect({ type: table.runtime_type, sandboxer: table.sandboxer, options: table.options ?? null }).toEqual({ type: launcher, sandboxer: "shim", options: null });

    const config = podConfig({ name: "inst-sbx", network: "pod", cgroupParent: ctd.cgroupParent });
    const { podSandboxId } = await cri.runtime.RunPodSandbox({ config, runtimeHandler: HANDLER });
    const { containerId } = await cri.runtime.CreateContainer({ podSandboxId, sandboxConfig: config, config: containerConfig({ name: "c", image: images.busybox, command: ["sleep", "600"], network: "pod" }) });
    await cri.runtime.StartContainer({ containerId });
    const e = await cri.runtime.ExecSync({ containerId, cmd: ["sh", "-c", "echo hi; exit 4"], timeout: 30 });
    expect([e.exitCode, e.stdout.toString()]).toEqual([4, "hi\n"]);
    // No pause container: containerd holds the app container only, the pod is in its sandbox store.
    const ids = (await ctd.ctr(["containers", "ls", "-q"], { namespace: CRI_NAMESPACE, check: true })).out.split("\n").filter(Boolean);
    expect(ids).toEqual([containerId]);
    expect((await ctd.ctr(["sandboxes", "ls"], { namespace: CRI_NAMESPACE, check: true })).out).toContain(podSandboxId);
    // The pod's one shim daemon: started through the launcher, which set the installed config.
    const shims = shimDaemons(ctd, "shimlab");
    expect(shims.map((s) => argOf(s, "-id"))).toEqual([podSandboxId]);
    const environ = fs.readFileSync(`/proc/${shims[0].pid}/environ`, "utf8").split("\0");
    expect(environ).toContain(`SHIMLAB_CONFIG=${shimConfig}`);
    await cri.runtime.StopPodSandbox({ podSandboxId });
    await cri.runtime.RemovePodSandbox({ podSandboxId });
    await waitUntil("the pod's shim to exit", () => !shimDaemons(ctd, "shimlab").length, 30_000);

    // The shim reads that config: broken, the next pod's StartSandbox says so.
    const good = fs.readFileSync(shimConfig, "utf8");
    try {
      fs.writeFileSync(shimConfig, 'hypervisor = "warp-drive"\n');
      const err = await cri.runtime.RunPodSandbox({ config: podConfig({ name: "inst-sbx-b", network: "pod", cgroupParent: ctd.cgroupParent }), runtimeHandler: HANDLER }).then(
        () => "started",
        (x: Error) => x.message,
      );
      expect(err).toContain(`${shimConfig}: hypervisor = "warp-drive"`);
    } finally {
      fs.writeFileSync(shimConfig, good);
    }
  }, 120_000);

  it("on containerd 2.x: uninstall gives containerd its config back", async (ctx) => {
    if (!env) return ctx.skip(`containerd ${peer.series} has no sandboxer`);
    uninstall({ prefix });
    expect(fs.readFileSync(env.ctd.configPath, "utf8")).toBe(configBefore);
    expect(fs.existsSync(path.join(prefix, "bin", SANDBOXER_SHIM_NAME))).toBe(false);
  });
});
