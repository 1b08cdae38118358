// CRI streaming, as kubectl exec/attach reach a container: RuntimeService.Exec
// and Attach return a URL on containerd's streaming server, and shimlab's
// WebSocket client speaks k8s remotecommand (v4.channel.k8s.io) to it. The
// stdio then travels containerd → shim (Exec with fifos, a pty, ResizePty) →
// agent. The same flows on handler runc must look the same.
import { describe, it, expect } from "vitest";
import { containerConfig, hostNetworkPod } from "../../src/harness/cri/pod";
import { ContainerState } from "../../src/gen/runtime.v1";
import { CriStream } from "../../src/harness/cri/stream";
import { runCommand } from "../../src/harness/shim-runner";
import { REPO_ROOT } from "../../src/harness/containerd";
import { missing } from "../helpers/env";
import { useCriContainerd } from "../helpers/cri-fixture";
import { waitUntil, type Handler } from "../helpers/cri";

const skip = missing("root", "containerd", "ctr", "runc", "busybox");

interface Seen {
  exec: { out: string; err: string; exitCode: number | null };
  tty: { size: boolean; exitCode: number | null };
  attach: { echoed: boolean; exitCode: number };
}

/** Collects a stream's output; `waitFor` resolves once stdout contains the text. */
function collect(st: CriStream) {
  let out = "";
  let err = "";
  const waiters: { text: string; resolve: () => void }[] = [];
  st.on("stdout", (d) => {
    out += d.toString();
    for (const w of waiters.filter((x) => out.includes(x.text))) w.resolve();
  });
  st.on("stderr", (d) => (err += d.toString()));
  return {
    out: () => out,
    err: () => err,
    waitFor: (text: string, timeoutMs = 15_000) =>
      out.includes(text)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            const t = setTimeout(() => reject(new Error(`no ${JSON.stringify(text)} in ${JSON.stringify(out)}`)), timeoutMs);
            waiters.push({ text, resolve: () => (clearTimeout(t), resolve()) });
          }),
  };
}

describe.skipIf(skip)("CRI streaming Exec and Attach (containerd 1.6's streaming server)", () => {
  const fx = useCriContainerd();
  const seen: Partial<Record<Handler, Seen>> = {};

  async function flow(handler: Handler): Promise<Seen> {
    const config = hostNetworkPod({ name: `stream-${handler}`, uid: `uid-stream-${handler}-${process.pid}`, cgroupParent: fx.env.ctd.cgroupParent });
    const { podSandboxId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: handler });
    const start = async (name: string, command: string[], o: { stdin?: boolean; tty?: boolean } = {}) => {
      const { containerId } = await fx.env.cri.runtime.CreateContainer({ podSandboxId, sandboxConfig: config, config: containerConfig({ name, image: fx.env.images.busybox, command, ...o }) });
      await fx.env.cri.runtime.StartContainer({ containerId });
      return containerId;
    };
    const sleeper = await start("sleeper", ["sleep", "3301"]);

    // Exec with stdin, stdout and stderr apart, and a non-zero exit.
    const ex = await fx.env.cri.runtime.Exec({ containerId: sleeper, cmd: ["/bin/sh", "-c", "read x; echo out:$x; echo err:$x >&2; exit 7"], stdin: true, stdout: true, stderr: true, tty: false });
    expect(ex.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/exec\/[\w-]+$/);
    const s1 = await CriStream.open(ex.url);
    const c1 = collect(s1);
    s1.write("hello\n");
    const r1 = await s1.done;
    const exec = { out: c1.out(), err: c1.err(), exitCode: r1.exitCode };
    expect(exec).toEqual({ out: "out:hello\n", err: "err:hello\n", exitCode: 7 });

    // Exec on a terminal: the window size set over the stream reaches the pty (ResizePty).
    const tt = await fx.env.cri.runtime.Exec({ containerId: sleeper, cmd: ["/bin/sh"], stdin: true, stdout: true, stderr: false, tty: true });
    const s2 = await CriStream.open(tt.url);
    const c2 = collect(s2);
    s2.resize(101, 37);
    await new Promise((r) => setTimeout(r, 300));
    s2.write("stty size; exit 4\r");
    const r2 = await s2.done;
    const tty = { size: /37 101/.test(c2.out()), exitCode: r2.exitCode };
    expect(tty, c2.out()).toEqual({ size: true, exitCode: 4 });

    // Attach to a container made with stdin and a tty: type into its shell, then end it.
    const shell = await start("shell", ["/bin/sh"], { stdin: true, tty: true });
    const at = await fx.env.cri.runtime.Attach({ containerId: shell, stdin: true, tty: true, stdout: true, stderr: false });
    expect(at.url).toMatch(/\/attach\//);
    const s3 = await CriStream.open(at.url);
    const c3 = collect(s3);
    s3.write("echo attached-$((6*7))\r");
    await c3.waitFor("attached-42");
    s3.write("exit 9\r");
    await s3.done;
    const status = await waitUntil("the attached shell to exit", async () => {
      const s = (await fx.env.cri.runtime.ContainerStatus({ containerId: shell })).status;
      return s?.state === ContainerState.CONTAINER_EXITED ? s : null;
    });
    const attach = { echoed: true, exitCode: status.exitCode };
    expect(attach.exitCode).toBe(9);

    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId });
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId });
    return { exec, tty, attach };
  }

  it("handler shimlab: exec with stdin/stdout/stderr and exit 7, exec on a resized tty, attach to a shell", async () => {
    seen.shimlab = await flow("shimlab");
  }, 90_000);

  it("handler runc gives the same observations", async () => {
    seen.runc = await flow("runc");
    if (seen.shimlab) expect(seen.shimlab).toEqual(seen.runc);
  }, 90_000);

  it("shimlab cri exec -i streams this process's stdin and returns the exit code", async () => {
    const config = hostNetworkPod({ name: "stream-cli", uid: `uid-stream-cli-${process.pid}`, cgroupParent: fx.env.ctd.cgroupParent });
    const { podSandboxId } = await fx.env.cri.runtime.RunPodSandbox({ config, runtimeHandler: "shimlab" });
    const { containerId } = await fx.env.cri.runtime.CreateContainer({ podSandboxId, sandboxConfig: config, config: containerConfig({ name: "c", image: fx.env.images.busybox, command: ["sleep", "3302"] }) });
    await fx.env.cri.runtime.StartContainer({ containerId });
    const cli = (args: string[], input?: string) => runCommand(`${REPO_ROOT}/bin/shimlab`, ["cri", "--address", fx.env.ctd.address, ...args], { timeoutMs: 30_000, stdin: input === undefined ? undefined : Buffer.from(input) });
    // v4 has no half-close: the stream stays open past stdin's end, until the process exits.
    const r = await cli(["exec", "-i", containerId, "--", "/bin/sh", "-c", "read x; echo got:$x; echo to-err >&2; exit 5"], "line\n");
    expect({ code: r.code, out: r.stdout.toString(), err: r.stderr.toString() }).toEqual({ code: 5, out: "got:line\n", err: "to-err\n" });
    const bad = await cli(["attach", "-i", "no-such-container"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.toString()).toMatch(/not found/i);
    await fx.env.cri.runtime.StopPodSandbox({ podSandboxId });
    await fx.env.cri.runtime.RemovePodSandbox({ podSandboxId });
  }, 60_000);
});
