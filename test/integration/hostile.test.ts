// Hostile input: each gets a clear errdefs error and changes nothing on disk.
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { ContainerdEmulator } from "../../src/harness/emulator";
import { SHIM_BINARY } from "../../src/harness/containerd";
import { runCommand, type ShimTask } from "../../src/harness/shim-runner";
import { Code, RpcError } from "../../src/ttrpc/status";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { busyboxRootfs, missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";

const skip = missing("root", "runc", "busybox");

/** Every file under dir with its size and mode, to compare before and after. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      out.push(`${p} ${st.mode.toString(8)} ${e.isFile() ? st.size : ""}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

describe.skipIf(skip)("hostile input", () => {
  let emu: ContainerdEmulator;
  let rootfs: string;
  let socketDir: string;
  const tasks: ShimTask[] = [];

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    emu = new ContainerdEmulator({ binary: SHIM_BINARY, namespace: "hostile" });
    socketDir = path.join(emu.dir, "s");
    emu.runner.o.env = { ...emu.runner.o.env, SHIMLAB_SOCKET_DIR: socketDir };
    await emu.start();
  });

  afterAll(async () => {
    for (const t of tasks) t.close();
    await emu?.close();
    removeCgroupDirs(emu.cgroupParent);
  });

  afterEach(async () => {
    await expectNoLeaks([emu.address], [emu.dir], emu.cgroupParent);
  });

  const start = (id: string, bundle: string, env: NodeJS.ProcessEnv = {}) =>
    runCommand(SHIM_BINARY, ["-namespace", "hostile", "-address", emu.address, "-id", id, "start"], {
      cwd: bundle,
      env: { ...process.env, ...emu.runner.o.env, ...env, TTRPC_ADDRESS: emu.events.socketPath },
    });

  it("refuses bad ids at start, before any path is built", async () => {
    const b = emu.bundle("good", emu.spec("good", { args: ["/bin/true"], rootPath: rootfs }));
    const before = [...snapshot(b), ...snapshot(socketDir), ...snapshot(path.join(emu.dir, "run"))];
    for (const [id, why] of [
      ["../escape", /must match/],
      ["a/b", /must match/],
      ["..", /must match/],
      ["x".repeat(77), /greater than maximum length \(76 characters\)/],
      ["-dash", /must match/],
      ["", /must not be empty/],
    ] as const) {
      const r = await start(id, b);
      expect(r.code, id).toBe(1);
      expect(r.stderr.toString(), id).toMatch(why);
      expect(r.stdout.length, "nothing but the error is printed").toBe(0);
    }
    const ns = await runCommand(SHIM_BINARY, ["-namespace", "bad/ns", "-address", emu.address, "-id", "good", "start"], { cwd: b });
    expect(ns.stderr.toString()).toMatch(/namespace "bad\/ns" must match/);
    expect([...snapshot(b), ...snapshot(socketDir), ...snapshot(path.join(emu.dir, "run"))]).toEqual(before);
  });

  it("refuses a missing, broken or oversized config.json with a clear error", async () => {
    const dir = path.join(emu.bundlesDir(), "cfg");
    fs.mkdirSync(dir, { recursive: true });
    let r = await start("cfg", dir);
    expect([r.code, r.stderr.toString()]).toEqual([1, `shimlab start: bundle ${dir} has no config.json: not found\n`]);
    fs.writeFileSync(path.join(dir, "config.json"), '{"ociVersion": "1.0.2", "annotations": ');
    r = await start("cfg", dir);
    expect(r.stderr.toString()).toMatch(/config\.json is not valid JSON/);
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { huge: "x".repeat(300 << 10) } }));
    r = await start("cfg", dir);
    expect(r.stderr.toString()).toMatch(/annotations total \d+ bytes, over the 262144-byte limit: invalid argument/);
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { "io.kubernetes.cri.container-type": "pod" } }));
    r = await start("cfg", dir);
    expect(r.stderr.toString()).toMatch(/unknown container type "pod"/);
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json"]);
    expect(fs.existsSync(socketDir) ? fs.readdirSync(socketDir) : []).toEqual([]);
    fs.rmSync(dir, { recursive: true });
  });

  it("refuses a socket path over 106 bytes", async () => {
    const b = emu.bundle("longsock", emu.spec("longsock", { args: ["/bin/true"], rootPath: rootfs }));
    const deep = path.join(emu.dir, "d".repeat(60));
    const r = await start("longsock", b, { SHIMLAB_SOCKET_DIR: deep });
    expect(r.code).toBe(1);
    expect(r.stderr.toString()).toMatch(/over the 106-byte limit of a unix socket: invalid argument/);
    expect(fs.existsSync(deep)).toBe(false);
  });

  it("answers hostile calls over ttrpc with errdefs codes, and the shim lives on", async () => {
    const b = emu.bundle("h1", emu.spec("h1", { args: ["/bin/sleep", "300"], rootPath: rootfs }));
    const t = await emu.runner.start("h1", b);
    tasks.push(t);
    const code = (p: Promise<unknown>) => p.then(() => -1, (e: RpcError) => e.code);
    expect(await code(t.task.Create({ id: "../../etc", bundle: b }))).toBe(Code.InvalidArgument);
    expect(await code(t.task.Create({ id: "h\u0000x", bundle: b }))).toBe(Code.InvalidArgument);
    expect(await code(t.task.Create({ id: "h1", bundle: path.join(emu.dir, "nowhere") }))).toBe(Code.NotFound);
    await t.task.Create({ id: "h1", bundle: b });
    expect(await code(t.task.Create({ id: "h1", bundle: b }))).toBe(Code.AlreadyExists);
    await t.task.Start({ id: "h1" });
    expect(await code(t.task.State({ id: "h1", execId: "ghost" }))).toBe(Code.NotFound);
    expect(await code(t.task.Kill({ id: "h1", execId: "ghost", signal: 9 }))).toBe(Code.NotFound);
    expect(await code(t.task.Kill({ id: "h1", execId: "../x", signal: 9 }))).toBe(Code.InvalidArgument);
    expect(await code(t.task.Delete({ id: "h1", execId: "ghost" }))).toBe(Code.NotFound);
    expect(await code(t.task.Exec({ id: "h1", execId: "e\u0000", spec: { typeUrl: "x", value: Buffer.from("{}") } }))).toBe(Code.InvalidArgument);
    expect(await code(t.task.Exec({ id: "h1", execId: "e1", spec: { typeUrl: "x", value: Buffer.from("not json") } }))).toBe(Code.InvalidArgument);
    expect(await code(t.task.Update({ id: "h1", resources: { typeUrl: "x", value: Buffer.from("{{") } }))).toBe(Code.InvalidArgument);
    expect(await code(t.task.ResizePty({ id: "h1", width: 80, height: 24 }))).toBe(Code.FailedPrecondition);
    expect((await t.task.State({ id: "h1" })).status).toBe(2);
    // sockets are 0600, the sandbox's run dir 0700
    const sock = t.address.replace("unix://", "");
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    const run = path.join(emu.dir, "run", "hostile", "h1");
    expect(fs.statSync(run).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(run, "agent.sock")).mode & 0o777).toBe(0o600);
    await t.task.Kill({ id: "h1", signal: 9 });
    await t.task.Wait({ id: "h1" });
    await t.task.Delete({ id: "h1" });
    await t.task.Shutdown({ id: "h1" });
    t.close();
    await emu.runner.delete("h1", b);
  });
});
