// kubectl port-forward into a pod, the CRI way: RuntimeService.PortForward
// gives a URL on containerd's streaming server, which enters the pod's network
// namespace and dials localhost:<port> there. On runc (the reference) and
// shimlab's host agent the server listens in that namespace; in a QEMU pod it
// listens in the guest, and the shim's relay carries the pod namespace's
// loopback into the VM (src/hypervisor/qemu/loopback.ts, src/pod/port-relay.ts,
// the agent's side src/mock-agent/port-forward.ts). The observations must be
// the same: through CRI directly and through `shimlab cri port-forward`.
import { describe, it, expect, afterAll, afterEach } from "vitest";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { cniMissing, cniNetworkFor } from "../../src/harness/cri/cni";
import { containerConfig, podConfig } from "../../src/harness/cri/pod";
import { PortForwardStream } from "../../src/harness/cri/port-forward";
import { listProcesses } from "../../src/harness/leaks";
import { REPO_ROOT } from "../../src/harness/containerd";
import { ensureImage, findKernel } from "../../src/guest-image";
import { RULE_COMMENT_PREFIX } from "../../src/hypervisor/qemu/loopback-commands";
import { qemuHarnessConfig } from "../../src/harness/qemu-config";
import { missing, REQUIRE_ALL } from "../helpers/env";
import { useCriContainerd } from "../helpers/cri-fixture";
import { shimDaemons, waitUntil } from "../helpers/cri";

let skip = missing("root", "containerd", "ctr", "runc", "busybox", "qemu-system-x86_64", "crun", "xz", "iptables");
if (!skip) {
  const why = cniMissing() ?? (findKernel() ? null : "linux-image-amd64");
  if (why && REQUIRE_ALL) throw new Error(`SHIMLAB_REQUIRE_ALL=1 but the port-forward test needs ${why}`);
  if (why) skip = `needs ${why}`;
}

const net = cniNetworkFor(process.pid);
const qemusUnder = (dir: string) => listProcesses().filter((p) => p.cmdline.includes("qemu-system") && p.cmdline.includes(dir));
const BIG = 1 << 20;

type Handler = "runc" | "shimlab" | "shimlab-qemu";
interface Seen {
  /** GET / through one CRI PortForward stream. */
  viaCri: string;
  /** A 1 MiB file through CRI, as its sha256 matches the container's own. */
  bigIntact: boolean;
  /** What a port nothing listens on comes to (the streaming server's error text, normalised). */
  unknownPort: string;
  /** GET / through `shimlab cri port-forward`, three connections at once. */
  viaCli: string[];
  cliExit: number | null;
}

/** One request through one forwarded connection: the raw HTTP answer, or the stream's error. */
async function httpThroughCri(cri: Parameters<typeof PortForwardStream.open>[0], pod: string, port: number, reqPath: string): Promise<{ body: Buffer; error: string | null }> {
  const st = await PortForwardStream.open(cri, pod, port);
  const chunks: Buffer[] = [];
  st.on("data", (d) => chunks.push(d));
  const end = new Promise<string | null>((resolve) => st.on("end", resolve));
  st.write(Buffer.from(`GET ${reqPath} HTTP/1.0\r\nHost: localhost\r\n\r\n`));
  const error = await end;
  const raw = Buffer.concat(chunks);
  const sep = raw.indexOf("\r\n\r\n");
  return { body: sep < 0 ? raw : raw.subarray(sep + 4), error };
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 60_000, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** Runs `shimlab cri port-forward` until it prints its port; the caller stops it. */
async function startCli(address: string, pod: string, spec: string): Promise<{ child: ChildProcess; port: number; exited: Promise<number | null>; stderr: () => string }> {
  const child = spawn(path.join(REPO_ROOT, "bin", "shimlab"), ["cri", "--address", address, "port-forward", pod, spec], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on("data", (d: string) => {
      out += d;
      const m = /Forwarding from 127\.0\.0\.1:(\d+) -> \d+/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then((code) => reject(new Error(`shimlab cri port-forward exited (${code}) before listening: ${err.trim()}`)));
  });
  return { child, port, exited, stderr: () => err };
}

function netnsOf(info: string): string {
  return JSON.parse(info).runtimeSpec.linux.namespaces.find((n: { type: string }) => n.type === "network").path;
}

/** The nat rules of ours in a namespace (by any path to it). */
function ourRules(nsPath: string): string[] {
  const save = execFileSync("nsenter", [`--net=${nsPath}`, "--", "iptables-save", "-t", "nat"]).toString();
  return save.split("\n").filter((l) => l.includes(RULE_COMMENT_PREFIX));
}

describe.skipIf(skip)("CRI PortForward into pods on a CNI network: runc, shimlab, and shimlab in QEMU", () => {
  let work: string;
  const seen: Partial<Record<Handler, Seen>> = {};
  const holders: ChildProcess[] = [];
  const fx = useCriContainerd({
    startTimeoutMs: 180_000,
    options: async () => {
      work = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-cri-pf-"));
      await ensureImage({ runc: true });
      const qemuCfg = path.join(work, "qemu.toml");
      fs.writeFileSync(qemuCfg, qemuHarnessConfig());
      return { cni: net, shimlabHandlers: { "shimlab-qemu": qemuCfg } };
    },
    dirs: () => [work],
  });

  afterAll(() => {
    for (const h of holders) h.kill("SIGKILL");
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(qemusUnder(fx.env.ctd.dir)).toEqual([]);
  });

  /**
   * Keeps the pod's namespace alive after containerd lets go of it (a process of ours inside), so
   * that what the shim left in it can still be read.
   */
  async function holdNetns(netns: string): Promise<{ path: string; release: () => void }> {
    const h = spawn("nsenter", [`--net=${netns}`, "--", "sleep", "600"], { stdio: "ignore" });
    holders.push(h);
    const p = `/proc/${h.pid}/ns/net`;
    // Until nsenter has joined it, the holder is in our own namespace.
    const want = fs.statSync(netns).ino;
    await waitUntil("the holder to join the pod's namespace", () => fs.statSync(p, { throwIfNoEntry: false })?.ino === want);
    return { path: p, release: () => h.kill("SIGKILL") };
  }

  async function flow(handler: Handler): Promise<Seen> {
    const config = podConfig({ name: `pf-${handler}`, uid: `uid-pf-${handler}-${process.pid}`, cgroupParent: fx.env.ctd.cgroupParent, network: "pod" });
    const { podSandboxId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: handler });
    const info = (await fx.env.cri.runtime.PodSandboxStatus({ podSandboxId, verbose: true })).info.info ?? "{}";
    const netns = netnsOf(info);
    const hold = handler === "shimlab-qemu" ? await holdNetns(netns) : null;
    const { containerId } = await fx.env.cri.runtime.CreateContainer({
      podSandboxId,
      sandboxConfig: config,
      config: containerConfig({
        name: "web",
        image: fx.env.images.busybox,
        network: "pod",
        command: ["sh", "-c", `mkdir -p /tmp/www && echo served-on-localhost > /tmp/www/index.html && head -c ${BIG} /dev/urandom > /tmp/www/big && exec httpd -f -p 8080 -h /tmp/www`],
      }),
    });
    await fx.env.cri.runtime.StartContainer({ containerId });
    try {
      if (hold) expect(ourRules(hold.path)).toHaveLength(1); // one REDIRECT, named for this pod
      if (hold) expect(ourRules(hold.path)[0]).toContain(`${RULE_COMMENT_PREFIX} ${podSandboxId}`);
      // The server is up when the container's own loopback answers.
      await waitUntil("httpd in the pod", async () => (await fx.env.cri.runtime.ExecSync({ containerId, cmd: ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080"], timeout: 30 })).stdout.includes("served-on-localhost"), 60_000);

      const viaCri = await httpThroughCri(fx.env.cri, podSandboxId, 8080, "/index.html");
      const big = await httpThroughCri(fx.env.cri, podSandboxId, 8080, "/big");
      const theirs = (await fx.env.cri.runtime.ExecSync({ containerId, cmd: ["sha256sum", "/tmp/www/big"], timeout: 30 })).stdout.toString().split(" ")[0];
      const t0 = Date.now();
      const unknown = await httpThroughCri(fx.env.cri, podSandboxId, 8081, "/");
      const unknownMs = Date.now() - t0;

      const cli = await startCli(fx.env.ctd.address, podSandboxId, "0:8080");
      let viaCli: string[];
      try {
        viaCli = await Promise.all([1, 2, 3].map(() => get(`http://127.0.0.1:${cli.port}/index.html`)));
      } finally {
        cli.child.kill("SIGTERM");
      }
      const cliExit = await cli.exited;
      expect(cli.stderr()).toBe("");
      // Refused or reset, not left hanging: containerd gives up on the copy a second after its end.
      expect(unknownMs).toBeLessThan(15_000);

      return {
        viaCri: viaCri.error ?? viaCri.body.toString(),
        bigIntact: big.error === null && big.body.length === BIG && crypto.createHash("sha256").update(big.body).digest("hex") === theirs,
        unknownPort: unknown.error?.match(/^error forwarding port 8081 to pod [0-9a-f]+/)?.[0].replace(/[0-9a-f]{64}/, "<pod>") ?? `no error: ${unknown.body.toString()}`,
        viaCli,
        cliExit,
      };
    } finally {
      await fx.env.cri.runtime.StopPodSandbox({ podSandboxId });
      await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId });
      if (hold) {
        // The namespace outlives containerd's hold on it here: the shim's teardown must have taken its rule out.
        await waitUntil("the shim's REDIRECT rule to go", () => ourRules(hold.path).length === 0, 30_000);
        hold.release();
      }
    }
  }

  const expected: Seen = {
    viaCri: "served-on-localhost\n",
    bigIntact: true,
    unknownPort: "error forwarding port 8081 to pod <pod>",
    viaCli: ["served-on-localhost\n", "served-on-localhost\n", "served-on-localhost\n"],
    cliExit: 0,
  };

  it("handler runc (the reference): localhost:<port> in the pod's namespace", async () => {
    seen.runc = await flow("runc");
    expect(seen.runc).toEqual(expected);
  }, 180_000);

  it("handler shimlab (host agent): the same", async () => {
    seen.shimlab = await flow("shimlab");
    expect(seen.shimlab).toEqual(expected);
  }, 180_000);

  it("handler shimlab-qemu: the same, served from inside the VM through the relay", async () => {
    seen["shimlab-qemu"] = await flow("shimlab-qemu");
    expect(seen["shimlab-qemu"]).toEqual(expected);
  }, 300_000);

  it("shimlab-qemu, shim SIGKILLed: containerd's `delete` takes the REDIRECT rule out of the pod's namespace", async () => {
    const config = podConfig({ name: "pf-crash", uid: `uid-pf-crash-${process.pid}`, cgroupParent: fx.env.ctd.cgroupParent, network: "pod" });
    const { podSandboxId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: "shimlab-qemu" });
    const netns = netnsOf((await fx.env.cri.runtime.PodSandboxStatus({ podSandboxId, verbose: true })).info.info ?? "{}");
    expect(ourRules(netns)).toHaveLength(1);
    const [shim] = shimDaemons(fx.env.ctd, "shimlab");
    process.kill(shim.pid, "SIGKILL");
    await waitUntil("QEMU to die with its shim", () => qemusUnder(fx.env.ctd.dir).length === 0, 30_000);
    // The namespace is containerd's and still there (the pod is not stopped): only `delete` can have cleaned it.
    await waitUntil("the REDIRECT rule to go", () => ourRules(netns).length === 0, 30_000);
    // What survives of ours: nothing but iptables' empty nat table, which no iptables command removes.
    const save = execFileSync("nsenter", [`--net=${netns}`, "--", "iptables-save", "-t", "nat"]).toString();
    expect(save.split("\n").filter((l) => l.startsWith("-A"))).toEqual([]);
    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId });
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId });
  }, 240_000);
});

afterAll(() => {
  if (!skip) expect(fs.existsSync(`/sys/class/net/${net.bridge}`), `bridge ${net.bridge} left behind`).toBe(false);
});
