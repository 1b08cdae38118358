// shimlab driven as containerd 2.x drives a shim: BootstrapParams on stdin
// (2.3+, protobuf or JSON) or none (2.0-2.2), the bootstrap result read as
// 2.3 reads it, task v3, and the Task API over gRPC or ttrpc. The same
// lifecycle checks run on every transport. (A real containerd 2.1-2.3 drops a
// gRPC shim as it connects, difference grpc-shim-dropped: the gRPC modes check
// shimlab's side of the protocol as a containerd without that bug would see it.
// test/integration/emulator-fidelity.test.ts holds the emulator to the real
// 1.6, 1.7 and 2.1.)
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { ContainerdEmulator } from "../../src/harness/emulator";
import { SHIM_BINARY } from "../../src/harness/containerd";
import type { Containerd2Options, ShimTask } from "../../src/harness/shim-runner";
import { BootstrapResult } from "../../src/gen/containerd.runtime.bootstrap.v1";
import type { RpcError } from "../../src/ttrpc/status";
import { removeCgroupDirs } from "../../src/mock-agent/runtime/runc";
import { busyboxRootfs, missing } from "../helpers/env";
import { useEmulator } from "../helpers/emulator";
import { expectNoLeaks } from "../helpers/leaks";

const skip = missing("root", "runc", "busybox");
const PROCESS_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";

const MODES: { name: string; c2: Containerd2Options; expect: { encoding: "binary" | "json"; protocol: string } }[] = [
  { name: "2.3 params (protobuf), ttrpc", c2: { params: "binary" }, expect: { encoding: "binary", protocol: "ttrpc" } },
  { name: "2.3 params (protobuf), gRPC", c2: { params: "binary", protocol: "grpc" }, expect: { encoding: "binary", protocol: "grpc" } },
  { name: "2.3 params (JSON), gRPC", c2: { params: "json", protocol: "grpc" }, expect: { encoding: "json", protocol: "grpc" } },
  { name: "2.0-2.2 (no params), gRPC", c2: { params: "none", protocol: "grpc" }, expect: { encoding: "json", protocol: "grpc" } },
];

describe.skipIf(skip).each(MODES)("shimlab under containerd 2.x: $name", ({ name, c2, expect: want }) => {
  let emu: ContainerdEmulator;
  let rootfs: string;
  let cgroupParent: string;
  const ns = "c2-" + MODES.findIndex((m) => m.name === name);

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    emu = new ContainerdEmulator({ binary: SHIM_BINARY, namespace: ns, containerd2: c2 });
    cgroupParent = emu.cgroupParent;
    await emu.start();
  });

  afterAll(async () => {
    await emu?.close();
    removeCgroupDirs(cgroupParent);
  });

  afterEach(async () => {
    await expectNoLeaks([emu.address], [emu.dir], cgroupParent);
  });

  async function finish(t: ShimTask): Promise<void> {
    await emu.teardown([t]);
  }

  const code = (p: Promise<unknown>) => p.then(() => "OK", (e: RpcError) => `${e.codeName}: ${e.message}`);

  it("answers start with a v3 bootstrap result and serves a whole lifecycle on it", async () => {
    const id = "life";
    const b = emu.bundle(id, emu.spec(id, { args: ["/bin/sleep", "300"], rootPath: rootfs }));
    const t = await emu.startShim(id, b);
    try {
      // What start printed, in the encoding containerd used.
      const out = t.startResult.stdout;
      expect(t.startResult.stderr.length).toBe(0);
      if (want.encoding === "binary") {
        const r = BootstrapResult.decode(out);
        expect([r.version, r.protocol, r.address]).toEqual([3, want.protocol, t.address]);
      } else {
        expect(JSON.parse(out.toString())).toEqual({ version: 3, address: t.address, protocol: want.protocol });
      }
      expect(t.bootstrap.protocol).toBe(want.protocol);
      // containerd 2.x dials gRPC shims at a bare socket path (net.Dial first), ttrpc ones at unix://.
      if (want.protocol === "grpc") expect(t.address).toMatch(/^\/run\/containerd\/s\/[0-9a-f]{64}$/);
      else expect(t.address).toMatch(/^unix:\/\/\//);
      // The `address` file is 1.x's (and 2.x's fallback): always the ttrpc form.
      expect(fs.readFileSync(path.join(b, "address"), "utf8")).toBe(want.protocol === "grpc" ? `unix://${t.address}` : t.address);

      await t.task.Create({ id, bundle: b });
      expect((await t.task.State({ id })).status).toBe(1);
      await t.task.Start({ id });
      await emu.events.waitFor((e) => e.topic === "/tasks/start" && e.event.containerId === id, 10_000, "TaskStart");
      const spec = { typeUrl: PROCESS_URL, value: Buffer.from(JSON.stringify({ args: ["/bin/sh", "-c", "exit 3"], cwd: "/", user: { uid: 0, gid: 0 } })) };
      await t.task.Exec({ id, execId: "x", spec });
      await t.task.Start({ id, execId: "x" });
      expect((await t.task.Wait({ id, execId: "x" })).exitStatus).toBe(3);
      await t.task.Delete({ id, execId: "x" });
      // Errors carry containerd's codes and messages over either transport.
      expect(await code(t.task.State({ id, execId: "nope" }))).toBe("NotFound: process does not exist nope: not found");
      expect(await code(t.task.Checkpoint({ id, path: "/tmp/x" }))).toMatch(/^Unimplemented: /);
      const c = await t.task.Connect({ id });
      expect(c.shimPid).toBeGreaterThan(0);
      await t.task.Kill({ id, signal: 9 });
      expect((await t.task.Wait({ id }, { timeoutMs: 10_000 })).exitStatus).toBe(137);
      const d = await t.task.Delete({ id });
      expect(d.exitStatus).toBe(137);
      const topics = emu.events.forContainer(id).map((e) => e.topic);
      for (const topic of ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit", "/tasks/delete"]) expect(topics).toContain(topic);
      // Shutdown with no task left, then the connection closed as containerd does: the shim exits and its socket goes.
      await t.task.Shutdown({ id }).catch(() => {});
      t.close();
      const sock = t.address.replace("unix://", "");
      for (let i = 0; i < 50 && fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
      expect(fs.existsSync(sock)).toBe(false);
    } finally {
      await finish(t);
    }
  });

  it("serves a pod: the container joins the sandbox's shim, each task on its own connection", async () => {
    const cri = (type: string) => ({ "io.kubernetes.cri.container-type": type, "io.kubernetes.cri.sandbox-id": "pod" });
    const pb = emu.bundle("pod", emu.spec("pod", { args: ["/bin/sleep", "300"], rootPath: rootfs, annotations: cri("sandbox") }));
    const pod = await emu.startShim("pod", pb);
    let app: ShimTask | undefined;
    try {
      await pod.task.Create({ id: "pod", bundle: pb });
      await pod.task.Start({ id: "pod" });
      const ab = emu.bundle("app", emu.spec("app", { args: ["/bin/sh", "-c", "exit 5"], rootPath: rootfs, annotations: cri("container") }));
      app = await emu.startShim("app", ab);
      // Same shim, same answer to start (protocol included), a second connection.
      expect(app.address).toBe(pod.address);
      expect(app.bootstrap).toEqual(pod.bootstrap);
      await app.task.Create({ id: "app", bundle: ab });
      await app.task.Start({ id: "app" });
      expect((await app.task.Wait({ id: "app" })).exitStatus).toBe(5);
      await app.task.Delete({ id: "app" });
      await app.task.Shutdown({ id: "app" }); // the sandbox is still there: the shim stays
      app.close();
      await emu.runner.delete("app", ab);
      expect((await pod.task.State({ id: "pod" })).status).toBe(2);
    } finally {
      app?.close();
      await finish(pod);
    }
  });

  it("a blocked Wait answers when the process exits while other calls go on", async () => {
    const id = "waiter";
    const b = emu.bundle(id, emu.spec(id, { args: ["/bin/sleep", "300"], rootPath: rootfs }));
    const t = await emu.startShim(id, b);
    try {
      await t.task.Create({ id, bundle: b });
      await t.task.Start({ id });
      const wait = t.task.Wait({ id });
      expect((await t.task.State({ id })).status).toBe(2);
      await t.task.Kill({ id, signal: 9 });
      expect((await wait).exitStatus).toBe(137);
    } finally {
      await finish(t);
    }
  });
});

describe.skipIf(skip)("containerd 2.x bootstrap edge cases", () => {
  const fx = useEmulator({ namespace: "c2edge" });

  it("refuses JSON params for another id, and an unknown protocol, with a clear error and no daemon", async () => {
    const b = fx.emu.bundle("edge1", fx.emu.spec("edge1", { args: ["/bin/true"], rootPath: fx.rootfs }));
    const r = await fx.emu.runner.start("edge1", b).catch((e) => e as Error);
    expect(r).not.toBeInstanceOf(Error); // plain 1.6 start still works in this emulator
    await (r as ShimTask).task.Shutdown({ id: "edge1" });
    (r as ShimTask).close();
    await fx.emu.runner.delete("edge1", b);
    // Drive the binary directly for the bad cases.
    const { runCommand } = await import("../../src/harness/shim-runner");
    const args = ["-namespace", "c2edge", "-address", fx.emu.address, "-id", "edge2", "start"];
    const b2 = fx.emu.bundle("edge2", fx.emu.spec("edge2", { args: ["/bin/true"], rootPath: fx.rootfs }));
    const bad = await runCommand(SHIM_BINARY, args, { cwd: b2, stdin: Buffer.from(JSON.stringify({ instance_id: "other", namespace: "c2edge" })) });
    expect(bad.code).toBe(1);
    expect(bad.combined.toString()).toMatch(/do not match the command line/);
    const proto = await runCommand(SHIM_BINARY, args, { cwd: b2, env: { ...process.env, SHIMLAB_SHIM_PROTOCOL: "quic" } });
    expect(proto.code).toBe(1);
    expect(proto.combined.toString()).toMatch(/SHIMLAB_SHIM_PROTOCOL="quic": want "ttrpc" or "grpc"/);
    expect(fs.existsSync(path.join(b2, "address"))).toBe(false);
  });

  it("puts the socket in BootstrapParams.socket_dir, and delete finds the live shim there", async () => {
    const dir = path.join(fx.emu.dir, "s");
    const e2 = new ContainerdEmulator({ binary: SHIM_BINARY, namespace: "c2sock", dir: path.join(fx.emu.dir, "e2"), containerd2: { params: "binary", protocol: "grpc", socketDir: dir } });
    await e2.start();
    const id = "sockdir";
    const b = e2.bundle(id, e2.spec(id, { args: ["/bin/sleep", "300"], rootPath: fx.rootfs }));
    const t = await e2.startShim(id, b);
    try {
      expect(path.dirname(t.address.replace("unix://", ""))).toBe(dir);
      expect(fs.readlinkSync(path.join(b, "s"))).toBe(dir);
      await t.task.Create({ id, bundle: b });
      await t.task.Start({ id });
      // `delete` while the shim lives must see it (in socket_dir) and leave its container alone.
      const d = await e2.runner.delete(id, b);
      expect(d.result.code).toBe(0);
      expect((await t.task.State({ id })).status).toBe(2);
    } finally {
      await e2.teardown([t]);
      await e2.close();
      removeCgroupDirs(e2.cgroupParent);
    }
  });

  it("reads a legacy options Any on stdin as 1.6 sends it, and still prints a plain address", async () => {
    const { runCommand } = await import("../../src/harness/shim-runner");
    const { Any } = await import("../../src/gen/google.protobuf");
    const { Options } = await import("../../src/gen/runtimeoptions.v1");
    const b = fx.emu.bundle("legacy", fx.emu.spec("legacy", { args: ["/bin/true"], rootPath: fx.rootfs }));
    const stdin = Any.encode({ typeUrl: "runtimeoptions.v1.Options", value: Options.encode({ configPath: "/nonexistent.toml" }) });
    const r = await runCommand(SHIM_BINARY, ["-namespace", "c2edge", "-address", fx.emu.address, "-id", "legacy", "start"], { cwd: b, stdin, env: { ...process.env, TTRPC_ADDRESS: fx.emu.events.socketPath } });
    try {
      expect(r.code).toBe(0);
      expect(r.combined.toString()).toMatch(/^unix:\/\/\/\S+$/);
    } finally {
      // No task was created: the daemon only waits for one; stop it as containerd would.
      const { Client } = await import("../../src/ttrpc/client");
      const { Task } = await import("../../src/gen/containerd.task.v2");
      const c = await Client.dial(r.combined.toString());
      await c.service(Task).Shutdown({ id: "legacy" }).catch(() => {});
      c.close();
      await fx.emu.runner.delete("legacy", b);
    }
  });
});
