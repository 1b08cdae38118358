#!/usr/bin/env node
// A pod through containerd's CRI plugin on each handler, interleaved run by
// run: RunPodSandbox, CreateContainer+StartContainer, ExecSync, and
// StopPodSandbox+RemovePodSandbox, timed from the CRI client; and the memory
// (RSS) of what serves one pod: shimlab's shim and agent, or runc's shim.
// Prints medians and shimlab/runc ratios. Needs root, containerd, runc,
// busybox-static and a build (npm run build).
//
//   node bench/cri-pod.mjs [--runs N]
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { startCriContainerd } = require("../dist/harness/cri/containerd.js");
const { hostNetworkPod, containerConfig } = require("../dist/harness/cri/pod.js");
const { listProcesses } = require("../dist/harness/leaks.js");
const { removeCgroupDirs } = require("../dist/mock-agent/runtime/runc.js");

const argv = process.argv.slice(2);
const runs = Number(argv[argv.indexOf("--runs") + 1] || 10) || 10;
const HANDLERS = ["shimlab", "runc"];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN);

async function onePod(env, handler, n) {
  const rt = env.cri.runtime;
  const t = [performance.now()];
  const config = hostNetworkPod({ name: `bench-${handler}-${n}`, uid: `bench-${process.pid}-${handler}-${n}`, cgroupParent: env.ctd.cgroupParent });
  const { podSandboxId } = await rt.RunPodSandbox({ config, runtimeHandler: handler });
  t.push(performance.now());
  const { containerId } = await rt.CreateContainer({ podSandboxId, sandboxConfig: config, config: containerConfig({ name: "app", image: env.images.busybox, command: ["sleep", "300"] }) });
  await rt.StartContainer({ containerId });
  t.push(performance.now());
  const ex = await rt.ExecSync({ containerId, cmd: ["true"], timeout: 30 });
  if (ex.exitCode !== 0) throw new Error(`exec on ${handler} exited ${ex.exitCode}`);
  t.push(performance.now());
  // What serves this pod, measured while it runs.
  const procs = listProcesses().filter((p) => p.cmdline.includes(env.ctd.dir) && !/ (start|delete)$/.test(p.cmdline) && !p.cmdline.startsWith("containerd "));
  const rss = procs.reduce((a, p) => a + rssKb(p.pid), 0);
  await rt.StopPodSandbox({ podSandboxId });
  await rt.RemovePodSandbox({ podSandboxId });
  t.push(performance.now());
  return { runPod: t[1] - t[0], container: t[2] - t[1], exec: t[3] - t[2], teardown: t[4] - t[3], total: t[4] - t[0], rssKb: rss, procs: procs.length };
}

const env = await startCriContainerd({});
try {
  const samples = Object.fromEntries(HANDLERS.map((h) => [h, []]));
  for (const h of HANDLERS) await onePod(env, h, -1); // warm-up: page cache, first image unpack
  for (let i = 0; i < runs; i++) {
    const order = i % 2 ? [...HANDLERS].reverse() : HANDLERS;
    for (const h of order) samples[h].push(await onePod(env, h, i));
  }
  const keys = ["runPod", "container", "exec", "teardown", "total", "rssKb"];
  const rows = keys.map((k) => {
    const [a, b] = HANDLERS.map((h) => median(samples[h].map((s) => s[k])));
    return { name: k, unit: k === "rssKb" ? "KiB" : "ms", shimlab: +a.toFixed(1), runc: +b.toFixed(1), ratio: +(a / b).toFixed(2) };
  });
  console.log(`CRI pod on containerd 1.6, median of ${runs} (processes per pod: shimlab ${samples.shimlab[0].procs}, runc ${samples.runc[0].procs})`);
  console.table(rows);
  console.log(JSON.stringify(rows));
} finally {
  const cg = env.ctd.cgroupParent;
  await env.destroy();
  removeCgroupDirs(cg);
}
