// Pods with a network of their own, as Kubernetes gives them: containerd 1.6's
// CRI plugin runs Debian's CNI bridge plugin into the pod's namespace, and the
// pod must answer on the IP CNI gave it. On handler runc and shimlab's host
// agent the containers join that namespace; on shimlab-qemu the namespace's
// veth is mirrored onto a tap (tc) and the guest's NIC gets its MAC, address
// and routes from the agent, as Kata does. The observations must be the same.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { execFileSync } from "node:child_process";
import { attachPodNetwork, detachPodNetwork, scanPodNetwork } from "../../src/hypervisor/qemu/network";
import { nullLogger } from "../../src/util/logger";
import { cniMissing, cniNetworkFor } from "../../src/harness/cri/cni";
import { containerConfig, podConfig } from "../../src/harness/cri/pod";
import { ContainerState } from "../../src/gen/runtime.v1";
import { listProcesses } from "../../src/harness/leaks";
import { ensureImage, findKernel } from "../../src/guest-image";
import { missing, REQUIRE_ALL } from "../helpers/env";
import { useCriContainerd } from "../helpers/cri-fixture";
import { shimDaemons, waitUntil } from "../helpers/cri";
import { qemuHarnessConfig } from "../../src/harness/qemu-config";
import { REPO_ROOT } from "../../src/harness/containerd";
import { alive } from "../helpers/procs";
import { factoryStatus } from "../../src/hypervisor/factory/client";
import { readVmRecord } from "../../src/hypervisor/rundir";

let skip = missing("root", "containerd", "ctr", "runc", "busybox", "qemu-system-x86_64", "crun", "xz");
if (!skip) {
  const why = cniMissing() ?? (findKernel() ? null : "linux-image-amd64");
  if (why && REQUIRE_ALL) throw new Error(`SHIMLAB_REQUIRE_ALL=1 but the pod network test needs ${why}`);
  if (why) skip = `needs ${why}`;
}

const net = cniNetworkFor(process.pid);
const gateway = net.subnet.replace(/\.0\/\d+$/, ".1");
const inSubnet = (ip: string) => ip.startsWith(net.subnet.replace(/\.0\/\d+$/, "."));
const qemusUnder = (dir: string) => listProcesses().filter((p) => p.cmdline.includes("qemu-system") && p.cmdline.includes(dir));

type Handler = "runc" | "shimlab" | "shimlab-qemu" | "shimlab-qemu-warm";
interface Seen {
  ipInSubnet: boolean;
  eth0HasPodIp: boolean;
  defaultRouteViaBridge: boolean;
  servedToHost: string;
  reachedHost: string;
  inGuest: boolean;
}

function get(url: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

describe.skipIf(skip)("CRI pods on a CNI network (bridge + host-local), on runc, shimlab and shimlab in QEMU", () => {
  let work: string;
  let hostServer: http.Server;
  let hostPort = 0;
  const seen: Partial<Record<Handler, Seen>> = {};
  const fx = useCriContainerd({
    startTimeoutMs: 180_000,
    options: async () => {
      work = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-cri-net-"));
      await ensureImage({ runc: true });
      const qemuCfg = path.join(work, "qemu.toml");
      fs.writeFileSync(qemuCfg, qemuHarnessConfig());
      // the same VMs, warm: a factory's, the pod's NIC plugged in at handout
      const warmCfg = path.join(work, "qemu-warm.toml");
      fs.writeFileSync(warmCfg, `${qemuHarnessConfig()}[factory]\nenable = true\nsocket = ${JSON.stringify(path.join(work, "factory", "factory.sock"))}\npool_size = 1\n`);
      return { cni: net, shimlabHandlers: { "shimlab-qemu": qemuCfg, "shimlab-qemu-warm": warmCfg } };
    },
    dirs: () => [work],
  });

  beforeAll(async () => {
    // Something on the host, on the pods' gateway, for them to reach.
    hostServer = http.createServer((_req, res) => res.end("host says hi\n"));
    await new Promise<void>((resolve, reject) => {
      hostServer.once("error", reject);
      // The bridge (and its gateway address) appears with the first pod: listen on all addresses.
      hostServer.listen(0, "0.0.0.0", () => resolve());
    });
    hostPort = (hostServer.address() as AddressInfo).port;
    factory("start");
  }, 240_000);

  const factory = (sub: string) =>
    execFileSync(path.join(REPO_ROOT, "bin", "shimlab"), ["factory", sub, "--config", path.join(work, "qemu-warm.toml"), "--dir", path.join(work, "factory")], { encoding: "utf8", timeout: 200_000 });

  afterAll(() => {
    factory("stop");
    hostServer?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(qemusUnder(fx.env.ctd.dir)).toEqual([]);
  });

  async function flow(handler: Handler, vm?: (pid: number) => void): Promise<Seen> {
    const config = podConfig({ name: `net-${handler}`, uid: `uid-net-${handler}-${process.pid}`, cgroupParent: fx.env.ctd.cgroupParent, network: "pod" });
    const { podSandboxId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: handler });
    vm?.(readVmRecord(path.join(fx.env.ctd.dir, "run", "k8s.io", podSandboxId))!.pid);
    const ip = (await fx.env.cri.runtime.PodSandboxStatus({ podSandboxId })).status?.network?.ip ?? "";
    const { containerId } = await fx.env.cri.runtime.CreateContainer({
      podSandboxId,
      sandboxConfig: config,
      config: containerConfig({
        name: "web",
        image: fx.env.images.busybox,
        network: "pod",
        command: ["sh", "-c", "mkdir -p /tmp/www && echo served-by-the-pod > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"],
      }),
    });
    await fx.env.cri.runtime.StartContainer({ containerId });
    const exec = async (cmd: string) => {
      const r = await fx.env.cri.runtime.ExecSync({ containerId, cmd: ["sh", "-c", cmd], timeout: 60 });
      return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
    };
    const addr = await exec("ip -o -4 addr show eth0");
    const route = await exec("ip -4 route show default");
    // The host reaches the pod's IP: on QEMU the frames cross veth -> tap -> virtio-net into the guest.
    const servedToHost = await waitUntil(`http://${ip}:8080 to answer`, () => get(`http://${ip}:8080/`, 2000).catch(() => null), 30_000).catch((e: Error) => e.message);
    // (busybox-static's `wget -q` segfaults on Debian 12: plain HTTP over nc instead.)
    const reached = await exec(`printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 ${gateway} ${hostPort} | tail -n 1`);
    const boot = await exec("cat /proc/sys/kernel/random/boot_id");
    const hostBoot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId });
    const st = await waitUntil("the web container to exit", async () => {
      const s = (await fx.env.cri.runtime.ContainerStatus({ containerId })).status;
      return s?.state === ContainerState.CONTAINER_EXITED ? s : null;
    }, 60_000);
    expect(st.exitCode).toBe(137);
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId });
    return {
      ipInSubnet: inSubnet(ip),
      eth0HasPodIp: addr.code === 0 && addr.out.includes(` ${ip}/`),
      defaultRouteViaBridge: route.out.includes(`via ${gateway}`),
      servedToHost,
      reachedHost: reached.code === 0 ? reached.out : `exit ${reached.code}: ${reached.err}`,
      inGuest: boot.out.trim() !== hostBoot,
    };
  }

  const expected = (inGuest: boolean): Seen => ({
    ipInSubnet: true,
    eth0HasPodIp: true,
    defaultRouteViaBridge: true,
    servedToHost: "served-by-the-pod\n",
    reachedHost: "host says hi\n",
    inGuest,
  });

  it("handler runc: the pod's IP serves the host, and the pod reaches the host through its gateway", async () => {
    seen.runc = await flow("runc");
    expect(seen.runc).toEqual(expected(false));
  }, 120_000);

  it("handler shimlab (host agent): the same", async () => {
    seen.shimlab = await flow("shimlab");
    expect(seen.shimlab).toEqual(expected(false));
  }, 120_000);

  it("handler shimlab-qemu: the same from inside the VM, over tc-mirrored taps", async () => {
    seen["shimlab-qemu"] = await flow("shimlab-qemu");
    expect(seen["shimlab-qemu"]).toEqual(expected(true));
  }, 240_000);

  it("handler shimlab-qemu-warm: the same, in a factory's warm VM whose NIC was plugged in when it was handed out", async () => {
    const warm = (await factoryStatus(path.join(work, "factory", "factory.sock"))).warm;
    expect(warm).toHaveLength(1);
    seen["shimlab-qemu-warm"] = await flow("shimlab-qemu-warm", (vmPid) => expect(vmPid).toBe(warm[0]));
    expect(seen["shimlab-qemu-warm"]).toEqual(expected(true));
  }, 240_000);

  it.each(["shimlab-qemu", "shimlab-qemu-warm"])("%s, shim SIGKILLed: QEMU dies with it and containerd's `delete` removes the tap and the mirror from the pod's namespace (and a warm VM's directory)", async (handler) => {
    if (handler === "shimlab-qemu-warm") await waitUntil("the factory's pool to refill", async () => (await factoryStatus(path.join(work, "factory", "factory.sock"))).ready === 1, 180_000);
    const config = podConfig({ name: `net-crash-${handler}`, uid: `uid-net-crash-${handler}-${process.pid}`, cgroupParent: fx.env.ctd.cgroupParent, network: "pod" });
    const { podSandboxId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: handler });
    const rec = readVmRecord(path.join(fx.env.ctd.dir, "run", "k8s.io", podSandboxId))!;
    expect((rec.dirs ?? []).length).toBe(handler === "shimlab-qemu-warm" ? 1 : 0);
    const info = JSON.parse((await fx.env.cri.runtime.PodSandboxStatus({ podSandboxId, verbose: true })).info.info ?? "{}");
    const netns: string = info.runtimeSpec.linux.namespaces.find((n: { type: string }) => n.type === "network").path;
    const inNs = (...a: string[]) => execFileSync("nsenter", [`--net=${netns}`, "--", ...a]).toString();
    expect(inNs("ip", "-o", "link")).toContain("tap0_kata");
    expect(inNs("tc", "qdisc", "show", "dev", "eth0")).toContain("ingress");
    const [shim] = shimDaemons(fx.env.ctd, "shimlab");
    process.kill(shim.pid, "SIGKILL");
    // (a warm VM's command line names the factory's directory: its pid, then)
    await waitUntil("QEMU to die with its shim", () => qemusUnder(fx.env.ctd.dir).length === 0 && !alive(rec.pid), 30_000);
    // The namespace is containerd's and still there (the pod is not stopped): only `delete` can have cleaned it.
    await waitUntil("the tap and eth0's ingress mirror to go", () => !inNs("ip", "-o", "link").includes("tap0_kata") && !inNs("tc", "qdisc", "show", "dev", "eth0").includes("ingress"), 30_000);
    expect(inNs("ip", "-o", "-4", "addr", "show", "eth0")).toMatch(/inet 10\./); // CNI's own setup untouched
    // the reaper's last step, after the taps
    for (const d of rec.dirs ?? []) await waitUntil(`the warm VM's directory ${d} to go`, () => !fs.existsSync(d), 30_000);
    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId });
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId });
  }, 240_000);
});

afterAll(() => {
  // The containerd that made the bridge is gone (the fixture's afterAll ran first): so must the bridge be.
  if (!skip) expect(fs.existsSync(`/sys/class/net/${net.bridge}`), `bridge ${net.bridge} left behind`).toBe(false);
});

describe.skipIf(skip)("the taps and mirrors in a pod namespace, made and removed", () => {
  const ns = `slns-${process.pid}`;
  const sh = (...a: string[]) => execFileSync(a[0], a.slice(1), { stdio: ["ignore", "pipe", "pipe"] }).toString();
  const hostEnd = `slv${process.pid % 100000}`;

  afterAll(() => {
    for (const a of [["ip", "netns", "del", ns], ["ip", "link", "del", hostEnd]]) {
      try {
        sh(...a);
      } catch {
        /* gone with the namespace */
      }
    }
  });

  it("scan finds CNI's kind of veth; attach adds tap0_kata and mirrors both ways; detach leaves the namespace as it was", async () => {
    sh("ip", "netns", "add", ns);
    sh("ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", ns);
    sh("ip", "-n", ns, "addr", "add", "10.254.1.5/24", "dev", "eth0");
    sh("ip", "-n", ns, "link", "set", "eth0", "up");
    sh("ip", "-n", ns, "route", "add", "default", "via", "10.254.1.1");
    const before = { links: sh("ip", "-n", ns, "-o", "link").replace(/\s+/g, " "), qdiscs: sh("tc", "-n", ns, "qdisc", "show") };
    const plan = await scanPodNetwork(`/var/run/netns/${ns}`);
    const mac = fs.readFileSync(`/sys/class/net/${hostEnd}/address`, "utf8").trim();
    expect(plan.nics).toHaveLength(1);
    expect(plan.nics[0]).toMatchObject({ hostIf: "eth0", tap: "tap0_kata", mtu: 1500 });
    expect(plan.nics[0].mac).not.toBe(mac); // the pod's end, not the host's
    expect(plan.interfaces[0].IPAddresses).toEqual([{ family: 0, address: "10.254.1.5", mask: "24" }]);
    expect(plan.routes).toContainEqual({ dest: "", gateway: "10.254.1.1", device: "eth0", source: "", scope: 0, family: 0 });

    await attachPodNetwork(plan, nullLogger);
    expect(sh("ip", "-n", ns, "-o", "link", "show", "tap0_kata")).toMatch(/tap0_kata.*UP/);
    expect(sh("tc", "-n", ns, "filter", "show", "dev", "eth0", "ingress")).toMatch(/mirred \(Egress Redirect to device tap0_kata\)/);
    expect(sh("tc", "-n", ns, "filter", "show", "dev", "tap0_kata", "ingress")).toMatch(/mirred \(Egress Redirect to device eth0\)/);

    await detachPodNetwork(plan);
    expect({ links: sh("ip", "-n", ns, "-o", "link").replace(/\s+/g, " "), qdiscs: sh("tc", "-n", ns, "qdisc", "show") }).toEqual(before);
    // Twice is harmless: the namespace may be gone, or the shim's teardown may run after a crash's.
    await detachPodNetwork(plan);
  });
});
