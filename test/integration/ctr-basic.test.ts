// Foundation: ctr run through io.containerd.shimlab.v2 on the tests' own
// containerd 1.6, the container forwarded through the kata agent API to the
// mock agent, which runs it with runc.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { buildOciArchive } from "../../src/harness/oci-image";
import { missing } from "../helpers/env";
import { useContainerd } from "../helpers/containerd-fixture";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const RUNTIME = "io.containerd.shimlab.v2";

describe.skipIf(skip)("ctr run on shimlab (containerd 1.6)", () => {
  const fx = useContainerd();

  const run = (id: string, cmd: string[], extra: string[] = [], stdin?: Buffer) =>
    fx.ctd.ctr(["run", "--rm", "--runtime", RUNTIME, ...extra, "--rootfs", fx.rootfs, id, ...cmd], { stdin });

  it("runs /bin/echo hello and exits 0", async () => {
    const r = await run("t1", ["/bin/echo", "hello"]);
    expect(r.err).toBe("");
    expect(r.out).toBe("hello\n");
    expect(r.code).toBe(0);
  });

  it("passes the container's exit code through", async () => {
    const r = await run("t2", ["/bin/sh", "-c", "exit 7"]);
    expect(r.code).toBe(7);
  });

  it("really isolates: own pid namespace, own hostname, own root", async () => {
    const r = await run("t3", ["/bin/sh", "-c", "echo pid=$$; ls /bin/busybox; test -e /usr/bin/node && echo host-root || echo own-root"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("pid=1\n");
    expect(r.out).toContain("own-root");
  });

  it("reports 137 for a task killed with SIGKILL", async () => {
    const child = spawn("ctr", ["--address", fx.ctd.address, "run", "--rm", "--runtime", RUNTIME, "--rootfs", fx.rootfs, "t4", "/bin/sleep", "300"], { env: fx.ctd.env() });
    const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    for (let i = 0; i < 100; i++) {
      const ls = await fx.ctd.ctr(["task", "ls"]);
      if (/t4\s+\d+\s+RUNNING/.test(ls.out)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const k = await fx.ctd.ctr(["task", "kill", "-s", "SIGKILL", "t4"]);
    expect(k.code).toBe(0);
    expect(await exited).toBe(137);
  });

  it("runs one id again as soon as its last run ends: each run a shim of its own, none joining the one still stopping its agent", async () => {
    for (let i = 0; i < 4; i++) {
      const r = await run("t8", ["/bin/echo", `run ${i}`]);
      expect({ code: r.code, out: r.out, err: r.err }).toEqual({ code: 0, out: `run ${i}\n`, err: "" });
    }
  });

  it("sends stdin to the container", async () => {
    const r = await run("t5", ["/bin/sh", "-c", "read x; echo got:$x"], [], Buffer.from("data\n"));
    expect(r.out).toBe("got:data\n");
    expect(r.code).toBe(0);
  });

  it("publishes /tasks/create, /tasks/start, /tasks/exit, /tasks/delete in order", async () => {
    const events = spawn("ctr", ["--address", fx.ctd.address, "events"], { env: fx.ctd.env() });
    let out = "";
    events.stdout.on("data", (d) => (out += d));
    await new Promise((r) => setTimeout(r, 300));
    const r = await run("t6", ["/bin/true"]);
    expect(r.code).toBe(0);
    for (let i = 0; i < 50 && !/\/tasks\/delete.*t6/.test(out); i++) await new Promise((res) => setTimeout(res, 100));
    events.kill();
    const topics = out
      .split("\n")
      .filter((l) => l.includes('"t6"') && l.includes("/tasks/"))
      .map((l) => /(\/tasks\/[a-z-]+)/.exec(l)![1]);
    expect(topics).toEqual(["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
  });

  it("runs from a local OCI image, mounting the snapshot's overlay rootfs", async () => {
    const archive = path.join(fx.ctd.dir, "busybox.tar");
    buildOciArchive(fx.rootfs, archive, { name: "docker.io/library/busybox:shimlab" });
    const imp = await fx.ctd.ctr(["images", "import", archive]);
    expect(imp.code, imp.err).toBe(0);
    const r = await fx.ctd.ctr(["run", "--rm", "--runtime", RUNTIME, "docker.io/library/busybox:shimlab", "t7", "sh", "-c", "echo from-image; grep -c ' / ' /proc/mounts"]);
    expect(r.err).toBe("");
    expect(r.out.split("\n")[0]).toBe("from-image");
    expect(r.code).toBe(0);
    fs.rmSync(archive);
  });
});
