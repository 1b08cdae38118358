// One critest at a time on a host: its port-forward specs listen on fixed
// host ports (127.0.0.1:12001-12003), so two copies of the suite running
// critest at once fail each other's ("bind: address already in use"). A lock
// directory (mkdir is atomic) holds the owner's pid and start time; one left
// by a process that is gone is taken over.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { processAlive, processStartTime } from "../../util/proc";

export const CRITEST_LOCK = path.join(os.tmpdir(), "shimlab-critest.lock");

export async function hostLock(dir: string, o: { timeoutMs: number; onWait?: (holder: string) => void }): Promise<() => void> {
  const deadline = Date.now() + o.timeoutMs;
  const me = `${process.pid} ${processStartTime(process.pid) ?? ""}`;
  let told = false;
  for (;;) {
    try {
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, "owner"), me);
      return () => fs.rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let owner = "";
    try {
      owner = fs.readFileSync(path.join(dir, "owner"), "utf8").trim();
    } catch {
      /* just made, owner not written yet: wait */
    }
    const [pid, start] = owner.split(" ");
    if (owner && !processAlive(Number(pid), start ?? "")) {
      fs.rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`another critest on this host (pid ${pid || "?"}) held ${dir} for ${o.timeoutMs} ms`);
    if (!told) o.onWait?.(pid || "?");
    told = true;
    await new Promise((r) => setTimeout(r, 500));
  }
}
