// containerd restarts while shims run (containerd's TestDaemonRestartWithRunningShim):
// containerd is SIGKILLed, a task exits while it is down, containerd comes
// back, reconnects to the shim and still gets the exit code; a long-lived task
// survives every restart. Run with runc's shim too, as the reference: from
// containerd 1.7 on, runc's exited task is removed at the restart instead
// (difference `leaked-shim-cleanup`), which the test asserts as such. And a
// shim whose last task is deleted after a restart exits then, as runc's does.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import { Containerd } from "../../src/harness/containerd";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";
import { forceRemove } from "../helpers/ctr";
import { shows } from "../../src/harness/peers/differences";
import { runProcesses } from "../../src/harness/leaks";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const RUNTIMES = { runc: "io.containerd.runc.v2", shimlab: "io.containerd.shimlab.v2" } as const;
const CYCLES = { runc: 3, shimlab: 20 } as const;

describe.skipIf(skip)("containerd restarts with running shims", () => {
  let ctd: Containerd;
  let rootfs: string;
  let sig: string;

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    sig = fs.mkdtempSync(path.join(os.tmpdir(), "restart-sig-"));
    ctd = new Containerd();
    await ctd.start();
  });

  afterAll(async () => {
    await ctd?.destroy();
    removeCgroupDirs(ctd.cgroupParent);
    fs.rmSync(sig, { recursive: true, force: true });
  });

  afterEach(async () => {
    await expectNoLeaks([ctd.address], [ctd.dir], ctd.cgroupParent);
  });

  const taskStatus = async (id: string) => {
    const ls = await ctd.ctr(["task", "ls"]);
    const m = new RegExp(`^${id}\\s+\\d+\\s+(\\w+)`, "m").exec(ls.out);
    return m ? m[1] : "ABSENT";
  };
  const waitStatus = async (id: string, want: string, ms = 10_000) => {
    const deadline = Date.now() + ms;
    let s = await taskStatus(id);
    while (s !== want && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      s = await taskStatus(id);
    }
    return s;
  };
  // A task that waits for its go file in a shared bind mount, then exits with code.
  const waiter = (id: string, runtime: string, code: number) =>
    ctd.ctr([
      "run", "-d", "--runtime", runtime,
      "--mount", `type=bind,src=${sig},dst=/sig,options=rbind:rw`,
      "--rootfs", rootfs, id, "/bin/sh", "-c", `while [ ! -e /sig/${id} ]; do sleep 0.05; done; exit ${code}`,
    ]);

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** The shim daemon serving id: its argv says `-id <id>` and, unlike start and delete, names no action. */
  const shimDaemon = (id: string): number => {
    const found = runProcesses().filter((p) => {
      const argv = p.cmdline.split(" ");
      const at = argv.indexOf("-id");
      return /containerd-shim-runc-v2|shim-main\.js|shim\/main\.js/.test(argv.slice(0, 2).join(" ")) && at > 0 && argv[at + 1] === id && !["start", "delete"].includes(argv[argv.length - 1]);
    });
    if (found.length !== 1) throw new Error(`want one shim daemon for ${id}, found: ${found.map((p) => p.cmdline).join("; ") || "none"}`);
    return found[0].pid;
  };
  /**
   * Milliseconds until pid has exited, or -1 after limitMs. A zombie has exited:
   * reaping it is its parent's business (shims are reparented to init, and
   * some inits reap only every second or so).
   */
  const exitTime = async (pid: number, limitMs: number): Promise<number> => {
    const from = Date.now();
    while (Date.now() - from < limitMs) {
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      } catch {
        return Date.now() - from;
      }
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return Date.now() - from;
      await sleep(2);
    }
    return -1;
  };

  // The shim has an event it could not send while containerd was down (an
  // exec's exit): the event waits out a retry backoff. When containerd comes
  // back and the task's deletion shuts the shim down, the shim must exit then,
  // as runc's does, not when that backoff would have ended.
  it("a shim exits promptly once its stopped task is deleted after a restart, an event still queued from the outage (runc's shim as the reference)", async () => {
    const exited: Record<string, number> = {};
    for (const rt of ["runc", "shimlab"] as const) {
      const id = `linger-${rt}`;
      try {
        expect((await waiter(id, RUNTIMES[rt], 0)).code).toBe(0);
        expect(await waitStatus(id, "RUNNING")).toBe("RUNNING");
        const ex = await ctd.ctr(["task", "exec", "-d", "--exec-id", "e", id, "/bin/sh", "-c", `while [ ! -e /sig/${id}-e ]; do sleep 0.05; done`]);
        expect(ex.code, ex.err).toBe(0);
        const shim = shimDaemon(id);

        await ctd.kill();
        fs.writeFileSync(path.join(sig, `${id}-e`), "");
        // Down long enough that the TaskExit's first retry (after 1 s) fails
        // too: the next one is 2 s later, well after containerd is back.
        await sleep(1_300);
        await ctd.start();
        fs.writeFileSync(path.join(sig, id), "");
        expect(await waitStatus(id, "STOPPED")).toBe("STOPPED");

        const del = await ctd.ctr(["task", "delete", id]);
        expect(del.code, del.err).toBe(0);
        exited[rt] = await exitTime(shim, 10_000);
        expect(exited[rt], `${rt}'s shim did not exit after its last task was deleted`).toBeGreaterThanOrEqual(0);
        expect((await ctd.ctr(["container", "rm", id])).code).toBe(0);
      } finally {
        await forceRemove(ctd, id);
      }
    }
    // A generous bound above runc's, which exits within milliseconds.
    expect(exited.shimlab, `ms after the delete until the shim exited: ${JSON.stringify(exited)}`).toBeLessThanOrEqual(exited.runc + 500);
  }, 120_000);

  for (const rt of ["runc", "shimlab"] as const) {
    it(`keeps exit codes and running tasks across ${CYCLES[rt]} SIGKILLs of containerd (${rt})`, async () => {
      const runtime = RUNTIMES[rt];
      const keep = `keep-${rt}`;
      const ids: string[] = [keep];
      try {
        const started = await waiter(keep, runtime, 0);
        expect(started.code, started.err).toBe(0);
        for (let i = 0; i < CYCLES[rt]; i++) {
          const id = `x-${rt}-${i}`;
          const code = 10 + i;
          ids.push(id);
          const run = await waiter(id, runtime, code);
          expect(run.code, run.err).toBe(0);
          expect(await waitStatus(id, "RUNNING")).toBe("RUNNING");

          await ctd.kill();
          // The task exits while containerd is down; its shim must keep the exit.
          fs.writeFileSync(path.join(sig, id), "");
          await new Promise((r) => setTimeout(r, 400));
          await ctd.start();

          expect(await taskStatus(keep), `cycle ${i}`).toBe("RUNNING");
          if (rt === "runc" && shows(ctd.peer, "leaked-shim-cleanup")) {
            // 1.7+: runc's shim answers Pids with nothing for the exited init, so the
            // restarted containerd cleans it up as a leaked shim; the exit code is gone.
            expect(await waitStatus(id, "ABSENT"), `cycle ${i}`).toBe("ABSENT");
            expect((await ctd.ctr(["container", "rm", id])).code).toBe(0);
            continue;
          }
          expect(await waitStatus(id, "STOPPED"), `cycle ${i}`).toBe("STOPPED");
          // ctr 1.6's task delete reports a non-zero exit status as a warning.
          const del = await ctd.ctr(["task", "delete", id]);
          expect(del.code, `cycle ${i}: ${del.err}`).toBe(0);
          expect(del.err, `cycle ${i}`).toContain(`exit with non-zero exit code ${code}`);
          expect((await ctd.ctr(["container", "rm", id])).code).toBe(0);
        }
        // The survivor still answers after all the restarts.
        const ex = await ctd.ctr(["task", "exec", "--exec-id", "after", keep, "/bin/sh", "-c", "echo alive; exit 4"]);
        expect(ex.out.trim()).toBe("alive");
        expect(ex.code).toBe(4);
        fs.writeFileSync(path.join(sig, keep), "");
        expect(await waitStatus(keep, "STOPPED")).toBe("STOPPED");
        expect((await ctd.ctr(["task", "delete", keep])).code).toBe(0);
        expect((await ctd.ctr(["container", "rm", keep])).code).toBe(0);
      } finally {
        for (const id of ids) await forceRemove(ctd, id);
      }
    }, 240_000);
  }
});
