// `shimlab demo`: the shim v2 lifecycle of a small pod, played by shimlab's
// containerd stand-in against shimlab's own shim binary, with no containerd
// and nothing but Node. Every step is told as it happens. With a fault
// variable set (SHIMLAB_EVENT_FAULTS…), it runs the failpoint shim instead,
// the only binary that reads them.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ContainerdEmulator } from "../harness/emulator";
import { buildBusyboxRootfs, findBusybox } from "../harness/rootfs";
import { FP_SHIM_BINARY, SHIM_BINARY } from "../harness/containerd";
import { FP_SHIM_ENV } from "../fp-shim/binary";
import type { ShimTask } from "../harness/shim-runner";
import type { RecordedEvent } from "../harness/events-server";
import { Narrator, color } from "./narrator";
import { RpcError } from "../ttrpc/status";
import { citation } from "../contract/cite";
import { TraceRecorder } from "../trace/recorder";
import { FileWatch, type WatchRoot } from "../trace/files";
import { socketAddress, socketDir, socketPath } from "../shim/address";

export interface DemoOptions {
  /** Directory for the run's files (kept afterwards when given). */
  dir?: string;
  out?: (s: string) => void;
  /** Where to write the trace page; defaults to <dir>/lifecycle.html. */
  html?: string;
  quiet?: boolean;
  /** Skip the HTML page (the trace is still written). */
  noHtml?: boolean;
}

export interface DemoResult {
  events: RecordedEvent[];
  dir: string;
  isolated: boolean;
  exitCodes: Record<string, number>;
  tracePath?: string;
  htmlPath?: string;
}

const ANN_TYPE = "io.kubernetes.cri.container-type";
const ANN_SANDBOX = "io.kubernetes.cri.sandbox-id";

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-demo-"));
  fs.mkdirSync(dir, { recursive: true });
  // Every process of the run appends to one trace; this process is containerd's side of it.
  const tracePath = path.join(dir, "trace.jsonl");
  fs.rmSync(tracePath, { force: true });
  const rec = new TraceRecorder(tracePath, "containerd");
  const n = new Narrator(o.quiet ? () => {} : o.out, (title) => rec.record("note", { text: title }));
  const isRoot = process.getuid?.() === 0;
  const busybox = findBusybox();
  const env: NodeJS.ProcessEnv = {};
  if (!isRoot) {
    // Without root: private socket and run directories, and the agent runs processes on the host.
    env.SHIMLAB_SOCKET_DIR = path.join(dir, "s");
    env.SHIMLAB_RUN_DIR = path.join(dir, "run");
  }
  if (!busybox) env.SHIMLAB_AGENT_RUNTIME = "host";
  env.SHIMLAB_TRACE = tracePath;
  const faults = FP_SHIM_ENV.filter((k) => process.env[k]);
  const shimBinary = faults.length ? FP_SHIM_BINARY : SHIM_BINARY;
  const emu = new ContainerdEmulator({ binary: shimBinary, namespace: "demo", dir: path.join(dir, "containerd"), env });
  const files = new FileWatch(rec, watchRoots(dir, tracePath, emu.address, env));
  await emu.start();
  const result: DemoResult = { events: emu.events.events, dir, isolated: false, exitCodes: {}, tracePath };

  n.raw(color.bold("shimlab demo — one pod, two containers, an exec, a kill and the teardown"));
  n.raw(color.dim(`files of this run: ${dir}`));
  if (faults.length) n.warn(`${faults.join(", ")} set: the failpoint shim ${path.basename(FP_SHIM_BINARY)} runs, which injects them`);
  emu.events.on("event", (e: RecordedEvent) => n.event(e.topic, JSON.stringify(e.event)));

  let rootfs: string;
  if (busybox) {
    rootfs = buildBusyboxRootfs(path.join(dir, "rootfs"), busybox);
    n.note(`rootfs: busybox from ${busybox} in ${rootfs}`);
  } else {
    rootfs = path.join(dir, "rootfs");
    fs.mkdirSync(rootfs, { recursive: true });
    n.warn("busybox-static is not installed: containers run as host processes, without isolation");
  }
  const sh = busybox ? "/bin/sh" : "/bin/sh";
  const tasks: ShimTask[] = [];
  const spec = (id: string, args: string[], ann: Record<string, string>) => emu.spec(id, { args, rootPath: rootfs, annotations: ann, hostname: "demo-pod" });

  try {
    // 1. the sandbox
    n.section("The pod sandbox gets its own shim", "containerd's CRI creates a pause container first; its annotations say `sandbox`, so `start` spawns a new shim daemon.");
    const podSpec = spec("demo-pod", [sh, "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"], { [ANN_TYPE]: "sandbox", [ANN_SANDBOX]: "demo-pod" });
    const podBundle = emu.bundle("demo-pod", podSpec);
    n.containerd(`exec ${path.basename(shimBinary)} -namespace demo -id demo-pod start   (cwd = the bundle)`);
    const pod = await emu.startShim("demo-pod", podBundle);
    tasks.push(pod);
    n.shim(`printed its address ${color.bold(pod.address)} in ${pod.startResult.ms.toFixed(0)} ms, and a daemon now serves it`);
    n.containerd("Task.Create(demo-pod): the shim boots the sandbox (a mock kata agent process), then CreateSandbox + CreateContainer over the kata agent API");
    const created = await pod.task.Create({ id: "demo-pod", bundle: podBundle });
    n.shim(`created; pid ${created.pid} is the agent's (guest pids mean nothing on the host, as with Kata's VM)`);
    await pod.task.Start({ id: "demo-pod" });
    n.ok("the sandbox container runs");

    // 2. two containers join
    n.section("Two containers join the pod's shim", "their annotations say `container` and name the sandbox: `start` prints the sandbox shim's address and spawns nothing.");
    const webSpec = spec("demo-web", [sh, "-c", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 1; done"], { [ANN_TYPE]: "container", [ANN_SANDBOX]: "demo-pod" });
    const jobSpec = spec("demo-job", [sh, "-c", "echo computing; sleep 1; echo done; exit 3"], { [ANN_TYPE]: "container", [ANN_SANDBOX]: "demo-pod" });
    const web = await emu.startShim("demo-web", emu.bundle("demo-web", webSpec));
    const job = await emu.startShim("demo-job", emu.bundle("demo-job", jobSpec));
    tasks.push(web, job);
    n.shim(`demo-web → ${web.address === pod.address ? "the same address" : web.address}; demo-job → ${job.address === pod.address ? "the same address" : job.address}`);
    const webIo = emu.stdio("demo-web");
    const jobIo = emu.stdio("demo-job");
    await web.task.Create({ id: "demo-web", bundle: web.bundle, stdout: webIo.stdout, stderr: webIo.stderr });
    await job.task.Create({ id: "demo-job", bundle: job.bundle, stdout: jobIo.stdout, stderr: jobIo.stderr });
    n.containerd("Task.Start(demo-web), Task.Start(demo-job), then Task.Wait(demo-job), which blocks beside other calls on the same connection");
    await web.task.Start({ id: "demo-web" });
    await job.task.Start({ id: "demo-job" });
    const jw = await job.task.Wait({ id: "demo-job" });
    await jobIo.drained();
    result.exitCodes["demo-job"] = jw.exitStatus;
    n.ok(`demo-job exited ${jw.exitStatus}; its stdout through the fifo: ${JSON.stringify(jobIo.out())}`);

    // 3. an exec
    n.section("An exec in demo-web", "Exec only records the process (exec-added); Start makes the agent run it (ExecProcess), and it has its own exit.");
    const execIo = emu.stdio("demo-web-e1");
    await web.task.Exec({
      id: "demo-web",
      execId: "e1",
      stdout: execIo.stdout,
      stderr: execIo.stderr,
      spec: { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: Buffer.from(JSON.stringify({ args: [sh, "-c", "echo hello from an exec in $(hostname); exit 5"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] })) },
    });
    await web.task.Start({ id: "demo-web", execId: "e1" });
    const ew = await web.task.Wait({ id: "demo-web", execId: "e1" });
    await execIo.drained();
    result.exitCodes["demo-web/e1"] = ew.exitStatus;
    n.ok(`exec e1 exited ${ew.exitStatus}; it printed ${JSON.stringify(execIo.out())}`);
    await web.task.Delete({ id: "demo-web", execId: "e1" });
    const isolated = execIo.out().includes("demo-pod");
    result.isolated = isolated && !!busybox && isRoot;

    // 4. kill
    n.section("Kill demo-web", "SIGKILL through the agent's SignalProcess; the exit status is 128+9.");
    await web.task.Kill({ id: "demo-web", signal: 9 });
    const ww = await web.task.Wait({ id: "demo-web" });
    await webIo.drained();
    result.exitCodes["demo-web"] = ww.exitStatus;
    n.ok(`demo-web exited ${ww.exitStatus} after printing ${webIo.out().split("\n").filter(Boolean).length} ticks`);

    // 5. teardown
    n.section("Teardown", "Delete each container, then the sandbox: the agent goes with it. Shutdown exits the shim only when no task is left; containerd runs `delete` after each.");
    for (const t of [job, web]) {
      const d = await t.task.Delete({ id: t.id });
      n.shim(`Delete(${t.id}) → exit ${d.exitStatus}`);
      await t.task.Shutdown({ id: t.id });
      n.shim(`Shutdown(${t.id}): tasks remain, so the shim stays`);
      t.close();
      const del = await emu.runner.delete(t.id, t.bundle);
      n.containerd(`exec ${path.basename(shimBinary)} -id ${t.id} -bundle … delete → exit ${del.result.code}, DeleteResponse{exit_status: ${del.response?.exitStatus}}`);
    }
    await pod.task.Kill({ id: "demo-pod", signal: 15 });
    const pw = await pod.task.Wait({ id: "demo-pod" });
    result.exitCodes["demo-pod"] = pw.exitStatus;
    await pod.task.Delete({ id: "demo-pod" });
    n.shim("Delete(demo-pod): answered, then the sandbox is destroyed (DestroySandbox) and the agent stops");
    await pod.task.Shutdown({ id: "demo-pod" });
    n.shim("Shutdown(demo-pod): no task left, so the shim exits once the agent has stopped");
    pod.close();
    const del = await emu.runner.delete("demo-pod", pod.bundle);
    n.containerd(`delete demo-pod → exit ${del.result.code}`);
    await new Promise((r) => setTimeout(r, 300));
  } catch (e) {
    n.warn(`demo failed: ${e instanceof RpcError ? e.toString() : (e as Error).message}`);
    throw e;
  } finally {
    for (const t of tasks) t.close();
    await emu.close();
    await new Promise((r) => setTimeout(r, 50)); // the last inotify events
    files.close();
    rec.close();
  }

  n.section("What happened", "events as containerd received them:");
  for (const e of result.events) n.raw(`  ${String(e.seq).padStart(2)} ${e.topic.padEnd(20)} ${JSON.stringify(e.event)}`);
  n.raw("");
  n.raw(result.isolated ? color.green("containers ran isolated under runc (own pid, uts and mount namespaces)") : color.yellow("containers ran without isolation (not root, or runc/busybox missing)"));
  n.raw("");
  n.raw(`trace of every hop (JSON lines): ${tracePath}`);
  if (!o.noHtml) {
    const { buildModel, readTrace } = await import("../trace/model");
    const { renderHtml } = await import("../trace/html");
    const model = buildModel(readTrace(tracePath));
    const html = o.html ? path.resolve(o.html) : path.join(dir, "lifecycle.html");
    fs.writeFileSync(html, renderHtml(model, { title: "shimlab demo — a pod's shim v2 lifecycle", source: tracePath }));
    result.htmlPath = html;
    const must = model.violations.filter((v) => v.level === "MUST").length;
    n.raw(`sequence diagram, event ordering, state machines and files: ${color.bold(html)}`);
    n.raw(color.dim(`  ${model.arrows.length} arrows across ${model.lanes.length} lanes; ${must ? color.red(`${must} MUST ordering violation${must > 1 ? "s" : ""}`) : "every MUST ordering held"}. Open it in a browser (no network needed).`));
    // A broken rule is named here too, with its entry, so the reader knows what to look up before opening the page.
    for (const v of [...model.violations].sort((a, b) => (a.level === b.level ? 0 : a.level === "MUST" ? -1 : 1))) n.raw(`  ${v.level === "MUST" ? color.red(`MUST ${v.rule} broken`) : color.yellow(`SHOULD ${v.rule} broken`)}: ${v.message}\n    rule: ${citation(v.rule)}`);
  }
  return result;
}

/** What the run's files are: its own directory, and its shim's socket when that lives in the shared socket directory. */
function watchRoots(dir: string, tracePath: string, containerdAddress: string, env: NodeJS.ProcessEnv): WatchRoot[] {
  const rootfs = path.join(dir, "rootfs");
  const roots: WatchRoot[] = [{ dir, create: true, ignore: (p) => p === tracePath || p === rootfs || p.startsWith(rootfs + "/") }];
  const sdir = env.SHIMLAB_SOCKET_DIR ?? socketDir();
  if (!sdir.startsWith(dir + "/")) {
    const ours = socketPath(socketAddress(containerdAddress, "demo", "demo-pod", sdir));
    roots.push({ dir: sdir, create: true, accept: (p) => p === ours });
  }
  return roots;
}
