// shimlab sniff between a real containerd (1.6 and 2.1) and a real shim
// (runc's of the same containerd package, and shimlab's): containerd and the
// shim see exactly what they see without it (same output, exit status and
// event stream), the trace holds the decoded lifecycle, the proxy goes with
// the shim, and the page rendered from the trace reads in Chromium.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { Containerd, SHIM_BINARY } from "../../src/harness/containerd";
import { resolveContainerd, type ContainerdPeer } from "../../src/harness/peers/containerd";
import { shows } from "../../src/harness/peers/differences";
import { readTrace } from "../../src/trace/model";
import type { TraceRecord } from "../../src/trace/recorder";
import { listProcesses, settle } from "../../src/harness/leaks";
import { removeCgroupDirs } from "../../src/util/cgroup";
import { ARTIFACTS, busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";
import { noBrowser, openPage } from "../helpers/page";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const REPO = path.resolve(__dirname, "..", "..");
const VERSIONS = ["1.6", "2.1"];

/** containerd's event stream as `ctr events` prints it, topics only, for one task id. */
async function watchEvents(ctd: Containerd): Promise<{ proc: ChildProcess; topics: (id: string) => string[] }> {
  const proc = spawn(ctd.peer.ctr, ["--address", ctd.address, "events"], { env: ctd.env() });
  let out = "";
  proc.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  // Subscribed once it prints an event of ours: a namespace made for that.
  for (let i = 0; !out.includes("/namespaces/create"); i++) {
    if (i > 100) throw new Error(`ctr events printed nothing in 10 s: ${out}`);
    await ctd.ctr(["namespaces", "create", `sniff-ready-${i}`]);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    proc,
    topics: (id) =>
      out
        .split("\n")
        .filter((l) => l.includes(`"${id}"`) && / \/tasks\//.test(l))
        .map((l) => / (\/tasks\/[a-z-]+)/.exec(l)![1]),
  };
}

const ids = (rs: TraceRecord[], kind: string, from: string) => rs.filter((r) => r.kind === kind && r.from === from).map((r) => String(r.method));

describe.skipIf(skip)("shimlab sniff: a live decoded view of any shim", () => {
  const peers = new Map<string, ContainerdPeer>();
  beforeAll(async () => {
    for (const v of VERSIONS) peers.set(v, await resolveContainerd(v));
  }, 600_000);

  for (const v of VERSIONS) {
    for (const which of ["runc", "shimlab"] as const) {
      describe(`containerd ${v}, ${which}'s shim`, () => {
        let ctd: Containerd;
        let dir: string;
        let shim: string;
        let runtime: string;
        let live: ChildProcess;
        let liveOut = "";
        beforeAll(async () => {
          const peer = peers.get(v)!;
          ctd = new Containerd({ peer });
          await ctd.start();
          shim = which === "runc" ? peer.runcShim : SHIM_BINARY;
          runtime = which === "runc" ? "io.containerd.runc.v2" : "io.containerd.shimlab.v2";
          // Short: the proxies' sockets live in it.
          dir = fs.mkdtempSync("/run/shimlab-sniff-t");
          // As a user runs it: in the foreground, printing as it happens.
          live = spawn(process.execPath, [path.join(REPO, "bin", "shimlab"), "sniff", "--shim", shim, "--dir", dir], { stdio: ["ignore", "pipe", "inherit"] });
          live.stdout!.on("data", (b: Buffer) => (liveOut += b.toString()));
          await settle(() => (liveOut.includes("trace:") ? [] : [1]), 10_000);
          expect(liveOut).toContain(`--runtime ${dir}/containerd-shim-sniff-v2`);
        }, 120_000);
        afterAll(async () => {
          if (live && live.exitCode === null) live.kill("SIGKILL");
          if (ctd) {
            await ctd.destroy();
            removeCgroupDirs(ctd.cgroupParent);
          }
          if (dir) fs.rmSync(dir, { recursive: true, force: true });
        });

        it("changes nothing containerd sees, and records the decoded lifecycle", async () => {
          const events = await watchEvents(ctd);
          try {
            const cmd = ["/bin/sh", "-c", "echo hi; echo err >&2; exit 3"];
            const plain = await ctd.ctr(["run", "--rm", "--runtime", runtime, "--rootfs", busyboxRootfs(), "plain", ...cmd]);
            const sniffed = await ctd.ctr(["run", "--rm", "--runtime", `${dir}/containerd-shim-sniff-v2`, "--rootfs", busyboxRootfs(), "sniffed", ...cmd]);
            expect([sniffed.code, sniffed.out, sniffed.err]).toEqual([plain.code, plain.out, plain.err]);
            expect(sniffed.code).toBe(3);
            await settle(() => (events.topics("sniffed").length < events.topics("plain").length ? [1] : []), 3000);
            // 2.1's runc shim can lose its /tasks/delete with or without a proxy (difference runc-task-delete-lost).
            const lossy = which === "runc" && shows(peers.get(v)!, "runc-task-delete-lost");
            const seen = (id: string) => events.topics(id).filter((t) => !(lossy && t === "/tasks/delete"));
            expect(seen("sniffed")).toEqual(seen("plain"));
            expect(events.topics("sniffed")).toContain("/tasks/exit");
          } finally {
            events.proc.kill();
          }
          // The proxy daemon goes with the shim it served.
          const left = await settle(() => listProcesses().filter((p) => p.cmdline.includes(dir) && p.cmdline.includes("daemon.js")), 5000);
          expect(left.map((p) => p.cmdline)).toEqual([]);

          const rs = readTrace(path.join(dir, "trace.jsonl"));
          const calls = ids(rs, "rpc.call", "containerd");
          for (const m of ["Create", "Start", "Wait", "State", "Delete", "Shutdown"]) expect(calls, m).toContain(m);
          // every call answered, each reply paired to its call by id
          const replies = rs.filter((r) => r.kind === "rpc.reply" && r.to === "containerd");
          expect(replies.length).toBe(calls.length);
          const exit = rs.find((r) => r.kind === "event" && r.topic === "/tasks/exit") as TraceRecord & { event: { id: string; exitStatus: number } };
          expect(exit.event).toMatchObject({ id: "sniffed", exitStatus: 3 });
          expect(rs.filter((r) => r.kind === "exec.call").map((r) => r.action)).toEqual(["start", "delete"]);
          expect(rs.filter((r) => r.kind === "wire.raw")).toEqual([]);
          const create = rs.find((r) => r.kind === "rpc.call" && r.method === "Create") as TraceRecord & { req: { id: string; bundle: string } };
          expect(create.req.id).toBe("sniffed");
          // A shimlab shim's leg to its agent, from its own wire tap, once each (containerd's side is the proxy's alone).
          const agentCalls = ids(rs, "rpc.call", "shim").filter((m) => m !== "Forward");
          if (which === "shimlab") {
            for (const m of ["CreateSandbox", "CreateContainer", "StartContainer", "WaitProcess", "RemoveContainer"]) expect(agentCalls, m).toContain(m);
            expect(rs.filter((r) => r.kind === "rpc.call" && r.from === "containerd" && r.method === "Create")).toHaveLength(1);
          } else expect(agentCalls).toEqual([]);

          // What the person watching saw, live: decoded calls with their stream ids, replies with latency, events.
          await settle(() => (liveOut.includes("delete exits") ? [] : [1]), 3000);
          const exited = new Promise((r) => live.once("exit", r));
          live.kill("SIGINT");
          await exited;
          expect(live.exitCode).toBe(0);
          expect(liveOut).toMatch(/containerd → shim {2}Create\(id=sniffed\) stream \d+/);
          expect(liveOut).toMatch(/shim → containerd {2}Wait ok exitStatus=3 .*\(\d+\.\d+ ms\)/);
          expect(liveOut).toMatch(/shim → containerd {2}event \/tasks\/exit .*exitStatus=3/);
          expect(liveOut).toMatch(/containerd runs .* start \(id sniffed\)/);
          expect(liveOut).toContain(`trace in ${dir}/trace.jsonl`);
          await expectNoLeaks([dir]);
        }, 120_000);

        it.skipIf(noBrowser)("renders the trace into the sequence page, read in Chromium", async () => {
          const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sniff-page-")), "sniff.html");
          execFileSync(process.execPath, [path.join(REPO, "bin", "shimlab"), "trace", "render", path.join(dir, "trace.jsonl"), "-o", out]);
          const view = await openPage(out, path.join(ARTIFACTS, `sniff-${v}-${which}.png`));
          expect(view.errors).toEqual([]);
          expect(view.arrows).toBeGreaterThan(15);
          expect(view.violations).toEqual([]);
          expect(view.detailAfterClick).toMatch(/start/);
          fs.rmSync(path.dirname(out), { recursive: true, force: true });
        }, 120_000);
      });
    }
  }
});
