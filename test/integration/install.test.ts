// `shimlab install` on the tests' own containerd 1.6: its config edited by
// install before it starts, its PATH holding only the installed launcher (not
// the checkout's bin/), then `ctr run` through shimlab and `uninstall`.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Containerd, REPO_ROOT } from "../../src/harness/containerd";
import { runCommand } from "../../src/harness/shim-runner";
import { install, uninstall } from "../../src/install/install";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";
import { forceRemove } from "../helpers/ctr";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const RUNTIME = "io.containerd.shimlab.v2";

describe.skipIf(skip)("shimlab install on containerd 1.6", () => {
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
    const dump = await runCommand("containerd", ["--config", ctd.configPath, "config", "dump"]);
    expect(dump.code).toBe(0);
    const text = dump.stdout.toString();
    const table = text.slice(text.indexOf('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.shimlab]'));
    expect(table).toMatch(/runtime_type = "io\.containerd\.shimlab\.v2"/);
    expect(table).toContain(`runtime_path = "${path.join(prefix, "bin", "containerd-shim-shimlab-v2")}"`);
    expect(table).toContain(`ConfigPath = "${path.join(prefix, "share", "shimlab", "config.toml")}"`);
    // The CRI plugin loaded with it.
    const plugins = await ctd.ctr(["plugins", "ls"]);
    expect(plugins.out).toMatch(/io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/);
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
      // The shim daemon runs the copied Node on the copied build.
      const pid = Number(fs.readFileSync(path.join(bundle, "shim.pid"), "utf8"));
      expect(fs.readlinkSync(`/proc/${pid}/exe`)).toBe(path.join(prefix, "lib", "shimlab", "node"));
      expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1]).toBe(path.join(prefix, "lib", "shimlab", "dist", "shim", "main.js"));
    } finally {
      await forceRemove(ctd, id);
    }
  });

  it("uninstall gives containerd its config back, and containerd still starts on it", async () => {
    uninstall({ prefix });
    expect(fs.readFileSync(ctd.configPath, "utf8")).toBe(configBefore);
    const dump = await runCommand("containerd", ["--config", ctd.configPath, "config", "dump"]);
    expect(dump.code).toBe(0);
    expect(dump.stdout.toString()).not.toContain("shimlab");
    expect(fs.readdirSync(path.join(prefix, "lib"))).toEqual([]);
  });
});
