// The shim's two one-shot subcommands alone, as containerd runs them, without
// containerd: `delete` of a task whose shim is gone (the usual one: nothing
// mounted, no VM record, no socket), `start` of a pod's container whose
// sandbox shim already serves (the "join" path: no daemon is launched), and
// `start` of a new single container (a daemon is launched; it is killed, with
// everything it started, before the next run). Each shim under comparison
// takes its turn run by run, runc's shim as the reference in the same run.
//
//   node bench/oneshot.mjs [--runs N] [--free] [--cases boot,delete,join,start,split]
//                          [--node NAME=/path/to/node]... [--snapshot NAME=/path/to/node]...
//                          [--json out]
//
// --node runs the same bin + dist under another Node (a copy of bin/, dist/
// and native/build/ per Node, so that each keeps V8 code caches of its own
// version). --snapshot runs `delete` and the join `start` from a V8 startup
// snapshot of the shim-cli bundle built by that Node (`--build-snapshot`; not
// the new `start`, whose native addon a snapshot's require cannot load).
// `shimlab` is the binary containerd runs, bin/containerd-shim-shimlab-v2 (the
// launcher, native/oneshot.c), `shimlab-nodeNN` its TypeScript shim
// (bin/containerd-shim-shimlab-v2.js) under this Node. Timing is spawnSync's:
// fork of this process → exit of the subcommand and EOF on its stdout, as
// containerd waits for both; the same overhead falls on every variant.
// A benchmark, not a test: nothing passes or fails.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { ROOT, placement, loadavg, sleep } from "./lib/env.mjs";
import { summary, round } from "./lib/stats.mjs";

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const opts = (name) => argv.flatMap((a, i) => (a === name ? [argv[i + 1]] : []));

if (!argv.includes("--free") && !process.env.SHIMLAB_BENCH_PINNED) {
  // as bench/run.mjs: everything we start inherits CPU 0
  const r = spawnSync("taskset", ["-c", "0", process.execPath, new URL(import.meta.url).pathname, ...argv], {
    stdio: "inherit",
    env: { ...process.env, SHIMLAB_BENCH_PINNED: "1" },
  });
  process.exit(r.status ?? 1);
}
delete process.env.NODE_EXTRA_CA_CERTS;

const runs = Number(opt("--runs", "40"));
const cases = new Set(opt("--cases", "boot,delete,join,start,split").split(","));
const RUNC_SHIM = "/usr/bin/containerd-shim-runc-v2";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "oneshot-"));
const NS = "oneshotbench";
// A containerd address nobody serves: neither `start` nor `delete` dials it.
const ADDRESS = path.join(work, "containerd.sock");
const sockDir = path.join(work, "s");
const runDir = path.join(work, "run");
fs.mkdirSync(sockDir, { mode: 0o700 });

/** A copy of the built shim whose `node` is nodeBin: bin/ + dist/ + native/build/. */
function treeFor(name, nodeBin) {
  const t = path.join(work, `tree-${name}`);
  for (const d of ["bin", "dist", "native/build"]) fs.cpSync(path.join(ROOT, d), path.join(t, d), { recursive: true });
  fs.copyFileSync(path.join(ROOT, "package.json"), path.join(t, "package.json"));
  // the bin's `env node` finds this one first
  fs.mkdirSync(path.join(t, "nodebin"));
  fs.symlinkSync(nodeBin, path.join(t, "nodebin", "node"));
  // keep the bundle newer than tsc's build info, as in the source tree
  const now = new Date();
  for (const f of fs.readdirSync(path.join(t, "dist", "bundle"))) fs.utimesSync(path.join(t, "dist", "bundle", f), now, now);
  return { bin: path.join(t, "bin", "containerd-shim-shimlab-v2.js"), pathPrefix: path.join(t, "nodebin") };
}

/**
 * A V8 startup snapshot of the shim-cli bundle, its main run on deserialisation,
 * and a bin that starts Node from it (`env -S`, as bin/ does).
 */
function snapshotFor(name, nodeBin) {
  const d = path.join(work, `snap-${name}`);
  fs.mkdirSync(d);
  let src = fs.readFileSync(path.join(ROOT, "dist", "bundle", "shim-cli.js"), "utf8").trimEnd();
  const tail = "require_main().main(process.argv.slice(2));";
  if (!src.endsWith(tail)) throw new Error("shim-cli.js no longer ends with its main call");
  // argv: node, this bin (after --), then containerd's arguments
  src = src.slice(0, -tail.length) + 'const __shim = require_main(); require("v8").startupSnapshot.setDeserializeMainFunction(() => __shim.main(process.argv.slice(2)));\n';
  fs.writeFileSync(path.join(d, "entry.js"), src);
  const blob = path.join(d, "shim-cli.blob");
  execFileSync(nodeBin, ["--snapshot-blob", blob, "--build-snapshot", path.join(d, "entry.js")], { cwd: d });
  const bin = path.join(d, "containerd-shim-shimlab-v2");
  fs.writeFileSync(bin, `#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS ${nodeBin} --snapshot-blob ${blob} --\n`, { mode: 0o755 });
  return bin;
}

const variants = [{ name: "runc", bin: RUNC_SHIM, node: null }];
variants.push({ name: "shimlab", bin: path.join(ROOT, "bin", "containerd-shim-shimlab-v2"), node: process.execPath, fast: true });
variants.push({ name: `shimlab-node${process.versions.node.split(".")[0]}`, bin: path.join(ROOT, "bin", "containerd-shim-shimlab-v2.js"), node: process.execPath });
for (const spec of opts("--node")) {
  const [name, nodeBin] = spec.split("=");
  const t = treeFor(name, nodeBin);
  variants.push({ name: `shimlab-${name}`, bin: t.bin, node: nodeBin, pathPrefix: t.pathPrefix });
}
for (const spec of opts("--snapshot")) {
  const [name, nodeBin] = spec.split("=");
  variants.push({ name: `shimlab-${name}-snap`, bin: snapshotFor(name, nodeBin), node: nodeBin, skip: new Set(["start"]) });
}

const require = createRequire(import.meta.url);
const { sha256Hex } = require(path.join(ROOT, "dist", "util", "sha256.js"));

const baseEnv = {
  ...process.env,
  TTRPC_ADDRESS: ADDRESS + ".ttrpc",
  // shimlab only: sockets and run dirs under this run's temp dir (runc's shim has its fixed /run/containerd/s)
  SHIMLAB_SOCKET_DIR: sockDir,
  SHIMLAB_RUN_DIR: runDir,
};
const envOf = (v) => (v.pathPrefix ? { ...baseEnv, PATH: `${v.pathPrefix}:${baseEnv.PATH}` } : baseEnv);

let seq = 0;
const fifos = [];
/** A bundle named after its task, as containerd lays them out (runc's shim finds it by cwd/../<id>). */
function bundle(id, annotations) {
  const b = path.join(work, "bundles", id);
  fs.mkdirSync(path.join(b, "rootfs"), { recursive: true });
  // the shape of the spec ctr writes for `ctr run --rootfs`, trimmed
  const spec = {
    ociVersion: "1.0.2-dev",
    process: { user: { uid: 0, gid: 0 }, args: ["/bin/busybox", "true"], env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], cwd: "/", capabilities: { bounding: ["CAP_CHOWN", "CAP_KILL"], effective: ["CAP_CHOWN", "CAP_KILL"], permitted: ["CAP_CHOWN", "CAP_KILL"] }, rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }], noNewPrivileges: true },
    root: { path: "rootfs" },
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    ],
    annotations,
    linux: { resources: { devices: [{ allow: false, access: "rwm" }] }, cgroupsPath: `/${NS}/x`, namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network" }], maskedPaths: ["/proc/acpi", "/proc/kcore"], readonlyPaths: ["/proc/bus", "/proc/sys"] },
  };
  if (!annotations) delete spec.annotations;
  fs.writeFileSync(path.join(b, "config.json"), JSON.stringify(spec));
  // what runc's shim wrote at Create and its delete reads: the runc binary to run
  fs.writeFileSync(path.join(b, "runtime"), "runc");
  // containerd makes the log fifo and holds it open O_RDWR before it runs the shim (runc's daemon exits without it)
  execFileSync("mkfifo", ["-m", "0700", path.join(b, "log")]);
  fifos.push(fs.openSync(path.join(b, "log"), fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
  return b;
}

const shimArgs = (id, b, action) => ["-namespace", NS, "-address", ADDRESS, "-publish-binary", "/usr/bin/containerd", "-id", id, "-bundle", b, action];

function run(v, id, b, action, extraEnv = {}) {
  const t0 = process.hrtime.bigint();
  // the launcher says on stderr when it hands over to Node: a fast figure must be the fast path's
  const env = { ...envOf(v), ...extraEnv, ...(v.fast ? { SHIMLAB_ONESHOT_DEBUG: "1" } : {}) };
  const r = spawnSync(v.bin, shimArgs(id, b, action), { cwd: b, env, stdio: ["ignore", "pipe", "pipe"] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (v.fast && r.stderr.includes("to node:")) throw new Error(`${v.name} ${action} handed over: ${r.stderr}`);
  if (r.status !== 0) throw new Error(`${v.name} ${action} ${id}: exit ${r.status} ${r.signal ?? ""}: ${r.stderr}${r.stdout}`);
  return { ms, out: r.stdout };
}

/** runc's shim puts its sockets in /run/containerd/s whatever we say; the path it will use for group g. */
function socketFor(v, group) {
  const dir = v.name === "runc" ? "/run/containerd/s" : sockDir;
  return path.join(dir, sha256Hex(path.posix.join(ADDRESS, NS, group)));
}
const listeners = [];
// On any exit, a failed run's included: runc's shim has its sockets in /run/containerd/s, outside our temp dir.
process.on("exit", () => {
  for (const l of listeners) fs.rmSync(l.p, { force: true });
});
/**
 * The listeners anew: nobody accepts on them (this process blocks in spawnSync meanwhile), so each
 * join's connection stays in the backlog until it fills; a fresh socket drops them.
 */
function reserve() {
  for (const l of listeners.splice(0)) {
    fs.closeSync(l.fd);
    fs.rmSync(l.p, { force: true });
    const { native } = require(path.join(ROOT, "dist", "native", "index.js"));
    listeners.push({ fd: native().listenUnix(l.p, 512), p: l.p });
  }
}
/** A socket that accepts (in the kernel's backlog) at group g's address: a sandbox shim that serves, for the join path. */
function serve(v, group) {
  const p = socketFor(v, group);
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
  const { native } = require(path.join(ROOT, "dist", "native", "index.js"));
  const fd = native().listenUnix(p, 512);
  listeners.push({ fd, p });
}

/** Running (a zombie is dead: the daemon's parent, `start`, is gone, and whoever adopted it reaps it in its own time). */
function alive(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Processes whose argv holds `-namespace <NS>` and `-id <id>`: the daemon `start` launched (both shims re-exec themselves so). */
function daemonsOf(id) {
  const pids = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let a;
    try {
      a = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const at = (f) => a.indexOf(f);
    if (at("-namespace") >= 0 && a[at("-namespace") + 1] === NS && at("-id") >= 0 && a[at("-id") + 1] === id) pids.push(Number(d));
  }
  return pids;
}

/** Kills what `start` launched (the daemon's process group: shimlab's agent shares it) and waits for it to go. */
async function reap(v, id) {
  let pids = daemonsOf(id);
  // runc's daemon may still be on its way (its start does not wait for it)
  for (let i = 0; i < 100 && !pids.length; i++) await sleep(2), (pids = daemonsOf(id));
  if (!pids.length) log(`${v.name}: no daemon found for ${id}`);
  for (const pid of pids) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
  for (let i = 0; i < 500 && pids.some(alive); i++) await sleep(2);
  if (pids.some(alive)) throw new Error(`${v.name}: daemon of ${id} did not die`);
  await sleep(5); // shimlab's agent reads EOF on its lifeline and goes too
  fs.rmSync(socketFor(v, id), { force: true });
  fs.rmSync(path.join(runDir, NS, id), { recursive: true, force: true });
}

const results = { placement: placement(), loadStart: loadavg(), runs, variants: variants.map((v) => v.name), cases: {} };
const log = (m) => console.error(`[oneshot] ${m}`);
const record = (c, name, samples) => ((results.cases[c] ??= {})[name] = summary(samples));

// --- Node's floor: `node -e 0`, and where bootstrap ends
if (cases.has("boot")) {
  const nodes = [...new Map(variants.filter((v) => v.node).map((v) => [v.node, v])).values()];
  const s = Object.fromEntries(nodes.map((v) => [v.node, { wall: [], boot: [] }]));
  for (let i = 0; i < runs; i++) {
    for (const v of nodes) {
      const t0 = process.hrtime.bigint();
      spawnSync(v.node, ["-e", "0"], { stdio: "ignore" });
      s[v.node].wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const r = spawnSync(v.node, ["-e", "process.stdout.write(String(performance.nodeTiming.bootstrapComplete))"], { encoding: "utf8" });
      s[v.node].boot.push(Number(r.stdout));
    }
  }
  // the harness's own floor: spawnSync of a process that does nothing
  const floor = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    spawnSync("/bin/true", [], { stdio: "ignore" });
    floor.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  record("spawn_bin_true", "harness", floor);
  for (const v of nodes) {
    const ver = execFileSync(v.node, ["--version"], { encoding: "utf8" }).trim();
    record("node_e0", ver, s[v.node].wall);
    record("bootstrapComplete", ver, s[v.node].boot);
  }
  log(`boot done`);
}

async function bench(c, prepare, action, after) {
  const vs = variants.filter((v) => !v.skip?.has(c));
  const s = Object.fromEntries(vs.map((v) => [v.name, []]));
  for (let i = -2; i < runs; i++) {
    const order = vs.map((_, k) => vs[(k + Math.max(i, 0)) % vs.length]);
    for (const v of order) {
      const { id, b } = prepare(v);
      const r = run(v, id, b, action);
      if (i >= 0) s[v.name].push(r.ms);
      if (after) await after(v, id, b, r);
    }
  }
  for (const v of vs) record(c, v.name, s[v.name]);
  log(`${c} done`);
}

// --- delete of a single container whose shim is gone
if (cases.has("delete")) {
  await bench("delete", () => { const id = `del${seq++}`; return { id, b: bundle(id) }; }, "delete", (v, id, b, r) => {
    // DeleteResponse{exit_status=137, exited_at}: what containerd would decode (runc's shim adds pid 0, so skip to field 2)
    if (!r.out.includes(Buffer.from([0x10, 0x89, 0x01, 0x1a]))) throw new Error(`${v.name} delete printed ${r.out.toString("hex")}`);
  });
}

// --- start of a pod's container that joins its sandbox's serving shim
if (cases.has("join")) {
  const pod = `pod${process.pid}`;
  for (const v of variants) if (!listeners.some((l) => l.p === socketFor(v, pod))) serve(v, pod);
  await bench("join", () => { const id = `c${seq++}`; return { id, b: bundle(id, { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": pod }) }; }, "start", (v, id, b, r) => {
    if (r.out.toString() !== "unix://" + socketFor(v, pod)) throw new Error(`${v.name} join printed ${r.out}`);
    reserve();
  });
}

// --- start of a new single container: the daemon is launched, then killed
if (cases.has("start")) await bench("start", () => { const id = `s${seq++}`; return { id, b: bundle(id) }; }, "start", (v, id) => reap(v, id));

// --- the split of a Node subcommand: bootstrap, then loading and our work, from inside
if (cases.has("split")) {
  const hook = path.join(work, "timing-hook.js");
  fs.writeFileSync(hook, `const t = performance.now(); process.on("exit", () => require("fs").writeFileSync(process.env.ONESHOT_SPLIT_OUT, JSON.stringify({ boot: performance.nodeTiming.bootstrapComplete, hook: t, exit: performance.now(), cpu: process.cpuUsage() })));`);
  const nodeVariants = variants.filter((v) => v.node && !v.fast && !v.skip);
  const pod = `pod${process.pid}`;
  for (const v of nodeVariants) if (!listeners.some((l) => l.p === socketFor(v, pod))) serve(v, pod);
  for (const action of ["delete", "join"]) {
    const s = Object.fromEntries(nodeVariants.map((v) => [v.name, { boot: [], work: [], cpu: [] }]));
    for (let i = -2; i < runs; i++) {
      for (const v of nodeVariants) {
        const id = `x${seq++}`;
        const b = action === "delete" ? bundle(id) : bundle(id, { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": pod });
        const out = path.join(work, "split.json");
        run(v, id, b, action === "delete" ? "delete" : "start", { NODE_OPTIONS: `--require ${hook}`, ONESHOT_SPLIT_OUT: out });
        const j = JSON.parse(fs.readFileSync(out, "utf8"));
        if (action === "join") reserve();
        if (i < 0) continue;
        s[v.name].boot.push(j.boot);
        s[v.name].work.push(j.exit - j.boot);
        s[v.name].cpu.push((j.cpu.user + j.cpu.system) / 1000);
      }
    }
    for (const v of nodeVariants) {
      record(`split_${action}_bootstrap`, v.name, s[v.name].boot);
      record(`split_${action}_after_bootstrap`, v.name, s[v.name].work);
      record(`split_${action}_cpu`, v.name, s[v.name].cpu);
    }
  }
  log("split done");
}

// Anything still running from this run's temp dir (a daemon or agent that escaped reap) goes now.
for (const d of fs.readdirSync("/proc")) {
  if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
  try {
    if (fs.readFileSync(`/proc/${d}/cmdline`, "utf8").includes(work)) {
      log(`left over, killed: ${d}`);
      process.kill(Number(d), "SIGKILL");
    }
  } catch {}
}
for (const fd of fifos) fs.closeSync(fd);
for (const l of listeners) {
  fs.closeSync(l.fd);
  fs.rmSync(l.p, { force: true });
}
results.loadEnd = loadavg();
fs.rmSync(work, { recursive: true, force: true });

console.log(`\none-shot subcommands — ${results.placement.mode} (cpus ${results.placement.cpus}), ${runs} runs, load ${results.loadStart.join(" ")} → ${results.loadEnd.join(" ")}`);
const names = [...new Set(Object.values(results.cases).flatMap((c) => Object.keys(c)))];
console.log(["case (median ms)".padEnd(28), ...names.map((n) => n.padStart(16))].join(" "));
for (const [c, byName] of Object.entries(results.cases)) {
  console.log([c.padEnd(28), ...names.map((n) => String(byName[n] ? round(byName[n].median, 2) : "-").padStart(16))].join(" "));
}
if (opt("--json")) fs.writeFileSync(opt("--json"), JSON.stringify(results, null, 2) + "\n");
