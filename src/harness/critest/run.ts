// One critest run against a CRI endpoint and runtime handler: a dry run with
// the same spec selection first (refusing to go on if a spec meant to be left
// out is still selected), then the run, writing ginkgo's JSON and JUnit
// reports, and the results read back from the JSON.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import type { CritestBinaries } from "../peers/cri-tools";
import { unmountUnder } from "../containerd";
import { CriClient } from "../cri/client";
import { CRITEST_LOCK, hostLock } from "./host-lock";
import { readGinkgoReport, type SpecResult } from "./report";
import { LEFT_OUT, skipPattern, type LeftOutSpec } from "./specs";
import { StringDecoder } from "node:string_decoder";
import { GinkgoCounter, type Progress } from "../progress";

export interface CritestRunOptions {
  binaries: CritestBinaries;
  /** containerd's CRI socket path. */
  socket: string;
  handler: string;
  /** Reports go to <reportDir>/<name>.json and <name>.junit.xml. */
  reportDir: string;
  name: string;
  /** ginkgo nodes (critest -parallel); 1 runs in critest's own process. */
  parallel?: number;
  /**
   * Tries per spec (-ginkgo.flake-attempts). Parallel nodes race: a nil-filter
   * ListContainerStats on one node can meet a container another node is
   * removing, and containerd answers NotFound (seen on 1.6). The same on every
   * handler; specs that needed a second try are reported.
   */
  attempts?: number;
  leftOut?: readonly LeftOutSpec[];
  /** critest's own output, as it runs (else kept only in <name>.log). */
  onOutput?: (chunk: string) => void;
  /** Told each phase, and the specs counted from critest's output as they finish (a run takes minutes in VMs). */
  progress?: Progress;
  timeoutMs?: number;
  /** How long the runtime may take to report every Status condition true before critest starts (default 60 s; 0: no wait). */
  readyTimeoutMs?: number;
  /**
   * The host-wide lock critest runs under (default CRITEST_LOCK: its port-forward specs bind fixed
   * host ports). A stand-in critest that binds nothing takes a lock of its own, and so never waits
   * for another run's real one.
   */
  lock?: string;
}

export interface CritestRun {
  name: string;
  handler: string;
  results: SpecResult[];
  jsonReport: string;
  junitReport: string;
  log: string;
  /** critest's exit code: 0 only if every selected spec passed. */
  exitCode: number | null;
  seconds: number;
  parallel: number;
  /**
   * Mounts critest itself left in its TMPDIR: its mount-propagation specs bind
   * mntSource over itself, and when a spec fails before its inner mount, the
   * cleanup's first unmount errors and the second never runs. Removed after the run.
   */
  critestMountsLeft: string[];
}

function critestArgs(o: CritestRunOptions, leftOut: readonly LeftOutSpec[]): string[] {
  const endpoint = `unix://${o.socket}`;
  return [
    `-runtime-endpoint=${endpoint}`,
    `-image-endpoint=${endpoint}`,
    `-runtime-handler=${o.handler}`,
    // Not the machine's /etc/crictl.yaml: the endpoints above are the whole configuration.
    `-config=${path.join(o.reportDir, "no-crictl.yaml")}`,
    ...(leftOut.length ? [`-ginkgo.skip=${skipPattern(leftOut)}`] : []),
    "-ginkgo.no-color",
  ];
}

function runCritest(o: CritestRunOptions, args: string[], log: string, timeoutMs: number, tmp: string, onText?: (s: string) => void): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const out = fs.openSync(log, "w");
    // TMPDIR: critest leaves its pods' log directories and, in parallel mode, the directory of
    // its binary's symlink in the temp dir; they go with this run's.
    const env = { ...process.env, TMPDIR: tmp, PATH: `${path.dirname(o.binaries.ginkgo)}:${process.env.PATH ?? "/usr/bin:/bin"}` };
    // Its own process group, so that a timeout ends ginkgo's nodes with it.
    const p = spawn(o.binaries.critest, args, { env, stdio: ["ignore", "pipe", "pipe"], detached: true, cwd: o.reportDir });
    // A chunk can end inside a multi-byte character (ginkgo's "•"): decoded across chunks.
    const text = new StringDecoder("utf8");
    const onData = (b: Buffer) => {
      fs.writeSync(out, b);
      const s = text.write(b);
      o.onOutput?.(s);
      onText?.(s);
    };
    p.stdout!.on("data", onData);
    p.stderr!.on("data", onData);
    const timer = setTimeout(() => {
      try {
        process.kill(-p.pid!, "SIGKILL");
      } catch {
        /* gone */
      }
    }, timeoutMs);
    p.once("error", (e) => {
      clearTimeout(timer);
      fs.closeSync(out);
      reject(e);
    });
    p.once("close", (code) => {
      clearTimeout(timer);
      fs.closeSync(out);
      resolve(code);
    });
  });
}

/** Checks a dry run's report against the left-out list: every listed spec exists and none is selected. */
export function checkSelection(dry: SpecResult[], leftOut: readonly LeftOutSpec[]): void {
  const byName = new Map(dry.map((r) => [r.name, r]));
  const problems: string[] = [];
  for (const l of leftOut) {
    const r = byName.get(l.name);
    if (!r) problems.push(`left-out spec not in critest: ${l.name}`);
    // In a dry run every selected spec "passes" without running.
    else if (r.state !== "skipped") problems.push(`left-out spec still selected (${r.state}): ${l.name}`);
  }
  if (!dry.some((r) => r.state === "passed")) problems.push("the dry run selected no spec at all");
  if (problems.length) throw new Error(`critest's spec selection is not the one meant:\n  ${problems.join("\n  ")}`);
}

export async function critest(o: CritestRunOptions): Promise<CritestRun> {
  const leftOut = o.leftOut ?? LEFT_OUT;
  const leftOutNames = new Set(leftOut.map((l) => l.name));
  fs.mkdirSync(o.reportDir, { recursive: true });
  const base = critestArgs(o, leftOut);
  // critest checks the runtime's conditions as one of its specs; the kubelet would not have started.
  if (o.readyTimeoutMs !== 0) {
    const cri = new CriClient(o.socket);
    try {
      await cri.untilRuntimeReady(o.readyTimeoutMs ?? 60_000);
    } finally {
      cri.close();
    }
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-critest-tmp-"));
  let run: CritestRun | undefined;
  try {
    run = await dryRunThenRun(o, base, leftOut, leftOutNames, tmp);
    return run;
  } finally {
    const left = await unmountUnder(tmp);
    if (run) run.critestMountsLeft = left.map((m) => path.relative(tmp, m));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function dryRunThenRun(o: CritestRunOptions, base: string[], leftOut: readonly LeftOutSpec[], leftOutNames: Set<string>, tmp: string): Promise<CritestRun> {
  const dryJson = path.join(o.reportDir, `${o.name}.dry-run.json`);
  const dryLog = path.join(o.reportDir, `${o.name}.dry-run.log`);
  o.progress?.line(`dry run (checking the spec selection) on handler ${o.handler}`);
  const dryCode = await runCritest(o, [...base, "-ginkgo.dry-run", `-ginkgo.json-report=${dryJson}`], dryLog, 60_000, tmp);
  if (dryCode !== 0 || !fs.existsSync(dryJson)) throw new Error(`critest -ginkgo.dry-run failed (exit ${dryCode}); see ${dryLog}`);
  checkSelection(readGinkgoReport(dryJson), leftOut);
  fs.rmSync(dryJson);
  fs.rmSync(dryLog);

  const parallel = o.parallel ?? 1;
  const jsonReport = path.join(o.reportDir, `${o.name}.json`);
  const junitReport = path.join(o.reportDir, `${o.name}.junit.xml`);
  for (const f of [jsonReport, junitReport]) fs.rmSync(f, { force: true });
  // Another copy of the suite may be running critest: its port-forward specs and ours bind the same host ports.
  const release = await hostLock(o.lock ?? CRITEST_LOCK, { timeoutMs: 1800_000, onWait: (pid) => o.progress?.line(`waiting for critest ${pid} (another run on this host) to finish: port-forward specs bind fixed host ports`) });
  try {
    return await runLocked(o, base, leftOutNames, jsonReport, junitReport, parallel, tmp);
  } finally {
    release();
  }
}

async function runLocked(o: CritestRunOptions, base: string[], leftOutNames: Set<string>, jsonReport: string, junitReport: string, parallel: number, tmp: string): Promise<CritestRun> {
  const log = path.join(o.reportDir, `${o.name}.log`);
  const started = Date.now();
  const counter = new GinkgoCounter();
  o.progress?.line(`running on handler ${o.handler}${parallel > 1 ? ` with ${parallel} ginkgo nodes` : ""}; log ${log}`);
  const exitCode = await runCritest(
    o,
    [...base, ...(parallel > 1 ? [`-parallel=${parallel}`] : []), `-ginkgo.flake-attempts=${o.attempts ?? 1}`, `-ginkgo.json-report=${jsonReport}`, `-ginkgo.junit-report=${junitReport}`, "-ginkgo.timeout=2h"],
    log,
    o.timeoutMs ?? 3600_000,
    tmp,
    (s) => {
      const before = counter.ran + counter.skipped;
      counter.feed(s);
      if (counter.ran + counter.skipped !== before) o.progress?.status(`${counter.summary()} (${o.progress.elapsed()} s)`);
    },
  );
  o.progress?.done(`exit ${exitCode} after ${Math.round((Date.now() - started) / 1000)} s: ${counter.summary()}`);
  const seconds = (Date.now() - started) / 1000;
  if (!fs.existsSync(jsonReport)) throw new Error(`critest wrote no report (exit ${exitCode}); see ${log}`);
  return { name: o.name, handler: o.handler, results: readGinkgoReport(jsonReport, leftOutNames), jsonReport, junitReport, log, exitCode, seconds, parallel, critestMountsLeft: [] };
}
