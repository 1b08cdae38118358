// critest's host-wide lock (src/harness/critest/host-lock.ts): one holder at a
// time, the next waits; a lock whose owner is gone is taken over.
import { describe, it, expect, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { hostLock } from "../../src/harness/critest/host-lock";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "host-lock-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("critest's host lock", () => {
  it("lets one holder in at a time; the next gets in once it is released", async () => {
    const lock = path.join(dir, "a.lock");
    const release = await hostLock(lock, { timeoutMs: 1000 });
    let waited = "";
    const second = hostLock(lock, { timeoutMs: 5000, onWait: (pid) => (waited = pid) });
    await new Promise((r) => setTimeout(r, 700));
    expect(waited).toBe(String(process.pid));
    release();
    const release2 = await second;
    expect(fs.readFileSync(path.join(lock, "owner"), "utf8")).toMatch(new RegExp(`^${process.pid} `));
    release2();
    expect(fs.existsSync(lock)).toBe(false);
  });

  it("times out with the holder named", async () => {
    const lock = path.join(dir, "b.lock");
    const release = await hostLock(lock, { timeoutMs: 1000 });
    await expect(hostLock(lock, { timeoutMs: 600 })).rejects.toThrow(new RegExp(`another critest on this host \\(pid ${process.pid}\\)`));
    release();
  });

  it("takes over a lock whose owner is gone", async () => {
    const lock = path.join(dir, "c.lock");
    const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout;
    fs.mkdirSync(lock);
    fs.writeFileSync(path.join(lock, "owner"), `${gone} 12345`);
    const release = await hostLock(lock, { timeoutMs: 1000 });
    release();
  });
});
