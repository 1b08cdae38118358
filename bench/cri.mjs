// A pod through containerd's CRI plugin, as a kubelet makes one: RunPodSandbox,
// CreateContainer + StartContainer, ExecSync, StopPodSandbox + RemovePodSandbox,
// each timed from the CRI client, on every handler in turn (run by run, so the
// host's noise falls on all alike), on one private CRI containerd. Handlers:
// shimlab, runc (the reference), and with `warm` shimlab-warm, shimlab taking
// its agent from a factory (lib/factory.mjs). Also the RSS of what serves each
// pod (shim and agent, or runc's shim), read while it runs.
import fs from "node:fs";
import path from "node:path";
import { dist } from "./lib/env.mjs";
import { summary } from "./lib/stats.mjs";
import { warmFactory } from "./lib/factory.mjs";

const { startCriContainerd } = dist("harness/cri/containerd.js");
const { hostNetworkPod, podConfig, containerConfig } = dist("harness/cri/pod.js");
const { listProcesses } = dist("util/proc.js");
const { removeCgroupDirs } = dist("mock-agent/runtime/runc.js");

export const PHASES = ["runPod", "container", "exec", "teardown", "total"];
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN);

let seq = 0;
/** One pod's phases; `network`: on CNI's network instead of the host's (a VM pod must have its own). */
export async function onePod(env, handler, { network = false } = {}) {
  const rt = env.cri.runtime;
  const n = seq++;
  const t = [performance.now()];
  const pod = { name: `bench-${handler}-${n}`, uid: `bench-${process.pid}-${handler}-${n}`, cgroupParent: env.ctd.cgroupParent };
  const config = network ? podConfig({ ...pod, network: "pod" }) : hostNetworkPod(pod);
  const { podSandboxId } = await rt.RunPodSandbox({ config, runtimeHandler: handler });
  t.push(performance.now());
  const { containerId } = await rt.CreateContainer({ podSandboxId, sandboxConfig: config, config: containerConfig({ name: "app", image: env.images.busybox, command: ["sleep", "300"] }) });
  await rt.StartContainer({ containerId });
  t.push(performance.now());
  const ex = await rt.ExecSync({ containerId, cmd: ["true"], timeout: 30 });
  if (ex.exitCode !== 0) throw new Error(`exec on ${handler} exited ${ex.exitCode}`);
  t.push(performance.now());
  // What serves this pod, measured while it runs: not containerd, not a `start`/`delete` in flight.
  // (a factory's parked daemon keeps its own argv: its shim.pid names it; a factory's agent, the sandbox's VM record)
  const shimPidsOfPod = shimPidFiles(env.ctd.state, podSandboxId);
  try {
    shimPidsOfPod.push(JSON.parse(fs.readFileSync(path.join(env.ctd.dir, "run", "k8s.io", podSandboxId, "vm.json"), "utf8")).pid);
  } catch {
    /* runc's pod, or an agent the shim started (its argv names the containerd's directory) */
  }
  const procs = listProcesses().filter((p) => shimPidsOfPod.includes(p.pid) || (p.cmdline.includes(env.ctd.dir) && !/ (start|delete)$/.test(p.cmdline) && !p.cmdline.startsWith(env.ctd.peer.containerd)));
  const rss = procs.reduce((a, p) => a + rssKb(p.pid), 0);
  await rt.StopPodSandbox({ podSandboxId });
  await rt.RemovePodSandbox({ podSandboxId });
  t.push(performance.now());
  return { runPod: t[1] - t[0], container: t[2] - t[1], exec: t[3] - t[2], teardown: t[4] - t[3], total: t[4] - t[0], rssKb: rss, procs: procs.length };
}

/** The pids in the shim.pid files of a pod's bundles (its sandbox's, its containers'), under containerd's state. */
function shimPidFiles(state, podSandboxId) {
  const out = [];
  const root = path.join(state, "io.containerd.runtime.v2.task", "k8s.io");
  let ids = [];
  try {
    ids = fs.readdirSync(root);
  } catch {
    return out;
  }
  for (const id of ids) {
    try {
      const spec = JSON.parse(fs.readFileSync(path.join(root, id, "config.json"), "utf8"));
      const a = spec.annotations ?? {};
      if (id !== podSandboxId && a["io.kubernetes.cri.sandbox-id"] !== podSandboxId) continue;
      const pid = Number(fs.readFileSync(path.join(root, id, "shim.pid"), "utf8"));
      if (pid > 0 && !out.includes(pid)) out.push(pid);
    } catch {
      /* not a bundle of this pod, or no shim.pid (runc's shim writes one too) */
    }
  }
  return out;
}

/** Medians (and the rest of the summary) per handler and phase, in ms; rssKb per pod. */
export async function criBench({ runs = 10, warmup = 1, warm = false, log = () => {} } = {}) {
  const factory = warm ? warmFactory("cri") : null;
  const handlers = ["shimlab", ...(warm ? ["shimlab-warm"] : []), "runc"];
  const env = await startCriContainerd(factory ? { shimlabHandlers: { "shimlab-warm": factory.config } } : {});
  try {
    if (factory) log(factory.start({ SHIMLAB_CGROUP_PARENT: env.ctd.cgroupParent }));
    const samples = Object.fromEntries(handlers.map((h) => [h, []]));
    for (let i = 0; i < warmup; i++) for (const h of handlers) await onePod(env, h); // page cache, the image's first unpack
    for (let i = 0; i < runs; i++) {
      const order = handlers.map((_, k) => handlers[(k + i) % handlers.length]);
      for (const h of order) samples[h].push(await onePod(env, h));
    }
    const out = Object.fromEntries(handlers.map((h) => [h, Object.fromEntries([...PHASES, "rssKb"].map((k) => [k, summary(samples[h].map((s) => s[k]))]))]));
    for (const h of handlers) out[h].procs = samples[h][0]?.procs;
    log(`CRI RunPodSandbox (median of ${runs}): ${handlers.map((h) => `${h} ${out[h].runPod.median.toFixed(1)} ms`).join(", ")}`);
    if (factory) log(factory.status());
    return out;
  } finally {
    const cg = env.ctd.cgroupParent;
    await env.destroy();
    factory?.stop();
    removeCgroupDirs(cg);
  }
}
