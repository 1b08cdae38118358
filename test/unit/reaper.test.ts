// The agent's reaper (src/mock-agent/reaper.ts): exits come with SIGCHLD, and a timer polls as well
// only while an exit is awaited. An idle agent's polls kept a TCG guest's vCPU busy for nothing.
import { describe, it, expect, vi } from "vitest";
import fs from "node:fs";
import { Reaper } from "../../src/mock-agent/reaper";
import { hasNative, native } from "../../src/native";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!hasNative())("the agent's reaper", () => {
  it("polls on a timer only while it awaits an exit", async () => {
    const r = new Reaper();
    const polls = vi.spyOn(r, "poll");
    r.start();
    try {
      await sleep(700);
      expect(polls).not.toHaveBeenCalled();
      const pid = native().spawnDetached("/bin/sleep", ["sleep", "0.6"], [], "/", [-1, -1, -1]);
      const exit = new Promise<number>((resolve) => r.watch(pid, resolve));
      await sleep(450);
      // watch's own poll, then the timer's every 200 ms (a SIGCHLD may be lost)
      expect(polls.mock.calls.length).toBeGreaterThanOrEqual(3);
      expect(await exit).toBe(0);
      await sleep(100); // the exit's own SIGCHLD may come after a timer's poll found it
      const after = polls.mock.calls.length;
      await sleep(700);
      expect(polls.mock.calls.length).toBe(after);
    } finally {
      r.stop();
    }
  });

  it("finds an exit whose signal it never saw as soon as the pid is watched", async () => {
    const r = new Reaper(); // not started: no SIGCHLD listener, no timer
    const pid = native().spawnDetached("/bin/sh", ["sh", "-c", "exit 7"], [], "/", [-1, -1, -1]);
    await sleep(200);
    const status = await new Promise<number>((resolve) => r.watch(pid, resolve));
    expect(status).toBe(7);
  });

  it("reaps an orphan that nobody watches as it exits, and keeps its status for a watch that comes later", async () => {
    const r = new Reaper();
    r.start(); // this process becomes a subreaper: the orphan comes to it
    try {
      const out = native().pipe();
      // the shell prints its background child's pid and exits; the child, re-parented to us, exits 5 later
      const sh = native().spawnDetached("/bin/sh", ["sh", "-c", "(exec >/dev/null; sleep 0.3; exit 5) & echo $!"], ["PATH=/usr/bin:/bin"], "/", [-1, out.write, -1]);
      native().closeFd(out.write);
      let text = "";
      const buf = Buffer.alloc(64);
      for (;;) {
        let n = 0;
        try {
          n = fs.readSync(out.read, buf);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
            await sleep(5);
            continue;
          }
          throw e;
        }
        if (n === 0) break;
        text += buf.subarray(0, n).toString();
      }
      native().closeFd(out.read);
      const orphan = Number(text.trim());
      expect(orphan).toBeGreaterThan(0);
      expect(await new Promise<number>((resolve) => r.watch(sh, resolve))).toBe(0);
      await sleep(800);
      // no zombie left behind, though nobody watched it
      expect(fs.existsSync(`/proc/${orphan}`)).toBe(false);
      expect(await new Promise<number>((resolve) => r.watch(orphan, resolve))).toBe(5);
    } finally {
      r.stop();
    }
  });
});
