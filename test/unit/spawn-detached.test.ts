// native spawnDetached: what `start` launches its daemon with. The daemon must
// see the same process setup libuv's detached spawn gave it: its own session,
// default signal dispositions, an empty mask, exactly the fds it was handed.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { hasNative, native } from "../../src/native";

function readAll(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(4096);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString();
}

async function reap(pid: number): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const r = native().waitpid(pid);
    if (r) return r.status;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`pid ${pid} did not exit`);
}

describe.skipIf(!hasNative())("native spawnDetached", () => {
  it("gives the child a new session, default signals, an empty mask, and only the fds asked for", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "spawn-detached-"));
    try {
      const out = native().pipe();
      const extra = fs.openSync(path.join(dir, "fd3"), "w");
      // stdin /dev/null, stdout the pipe, stderr /dev/null, fd 3 a file; run in dir
      const script = 'read -r _ _ _ _ _ sid _ < /proc/self/stat; echo "sid=$sid pid=$$"; grep -E "^Sig(Ign|Blk)" /proc/self/status; ls /proc/self/fd | sort -n | tr "\\n" " "; echo; readlink /proc/self/fd/0 /proc/self/fd/3; pwd';
      const pid = native().spawnDetached("/bin/sh", ["/bin/sh", "-c", script], ["PATH=/usr/bin:/bin", "X=1"], dir, [-1, out.write, -1, extra]);
      fs.closeSync(out.write);
      fs.closeSync(extra);
      const text = readAll(out.read);
      fs.closeSync(out.read);
      expect(await reap(pid)).toBe(0);
      expect(text).toContain(`sid=${pid} pid=${pid}`);
      // signals 1-31 (32 and 33 are glibc's own, which no spawn can reset)
      const sigmask = (name: string) => BigInt("0x" + new RegExp(`${name}:\\s+([0-9a-f]+)`).exec(text)![1]) & 0x7fffffffn;
      expect(sigmask("SigIgn")).toBe(0n);
      expect(sigmask("SigBlk")).toBe(0n);
      // 0-3, and none of our close-on-exec fds (such as the pipe's read end);
      // fds a test runner leaks without close-on-exec may follow
      const fds = text.split("\n")[3].trim().split(" ").map(Number);
      expect(fds.slice(0, 4)).toEqual([0, 1, 2, 3]);
      expect(fds).not.toContain(out.read);
      expect(text).toContain("/dev/null\n" + path.join(dir, "fd3"));
      expect(text.trim().endsWith(dir)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports a missing program as an error, and rejects bad arguments", () => {
    expect(() => native().spawnDetached("/nonexistent/prog", ["/nonexistent/prog"], [], "/", [-1, -1, -1])).toThrow(/posix_spawn: No such file/);
    expect(() => native().spawnDetached("/bin/true", [], [], "/", [-1])).toThrow(/bad argument/);
    expect(() => (native().spawnDetached as unknown as (...a: unknown[]) => number)("/bin/true", ["/bin/true"], [], "/")).toThrow(TypeError);
  });
});
