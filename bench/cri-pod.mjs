#!/usr/bin/env node
// The CRI pod benchmark alone (bench/cri.mjs; `npm run bench` runs it too):
// prints medians and shimlab/runc ratios per phase. Needs root, containerd,
// runc, busybox-static and a build (npm run build).
//
//   node bench/cri-pod.mjs [--runs N] [--warm]
import { criBench, PHASES } from "./cri.mjs";

const argv = process.argv.slice(2);
const runs = Number(argv[argv.indexOf("--runs") + 1] || 10) || 10;
delete process.env.NODE_EXTRA_CA_CERTS; // containerd (and so every shim) inherits our environment
const r = await criBench({ runs, warm: argv.includes("--warm"), log: (m) => console.error(m) });
const rows = [];
for (const h of Object.keys(r).filter((h) => h !== "runc"))
  for (const k of [...PHASES, "rssKb"]) {
    const [a, b] = [r[h][k].median, r.runc[k].median];
    rows.push({ handler: h, name: k, unit: k === "rssKb" ? "KiB" : "ms", shimlab: +a.toFixed(1), runc: +b.toFixed(1), ratio: +(a / b).toFixed(2) });
  }
console.log(`CRI pod, median of ${runs} (processes per pod: ${Object.keys(r).map((h) => `${h} ${r[h].procs}`).join(", ")})`);
console.table(rows);
