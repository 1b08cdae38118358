// shimlab cri: a small crictl over shimlab's CRI client, and `up`, which
// starts a private containerd with the CRI plugin set up for shimlab.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CriClient } from "../../harness/cri/client";
import { containerConfig, podConfig } from "../../harness/cri/pod";
import { NamespaceMode, PodSandboxState, ContainerState_names, ContainerStatusResponse, PodSandboxState_names, PodSandboxStatusResponse, type PodSandboxConfigInit } from "../../gen/runtime.v1";
import { toPlain } from "../../proto/message";
import { CriStream } from "../../harness/cri/stream";
import { parsePortSpec, PortForwarder } from "../../harness/cri/port-forward";
import { bool, dispatch, str, UsageError, type Parsed } from "../args";

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] + 3))).join("")).join("\n") + "\n";
}

const short = (id: string) => id.slice(0, 13);
const ago = (ns: number) => {
  const s = Math.max(0, Math.round((Date.now() - ns / 1e6) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
};

export function criCommand(argv: string[]): Promise<number> {
  return dispatch(["cri"], argv, async (sub, p) => {
    try {
      const address = str(p, "address") ?? process.env.CONTAINER_RUNTIME_ENDPOINT ?? "/run/containerd/containerd.sock";
      const timeout = Number(str(p, "timeout") ?? NaN);
      if (sub === "up") return await up(p);
      const cri = new CriClient(address, { defaultTimeoutMs: 120_000 });
      try {
        return await runSub(cri, sub, p, timeout);
      } finally {
        cri.close();
      }
    } catch (e) {
      if (e instanceof UsageError) throw e;
      process.stderr.write(`shimlab cri: ${(e as Error).message}\n`);
      return 1;
    }
  });
}

async function runSub(cri: CriClient, sub: string, p: Parsed, timeout: number): Promise<number> {
  const rt = cri.runtime;
  const args = p.positionals;
  const out = (s: string) => process.stdout.write(s);
  switch (sub) {
    case "version": {
      const v = await rt.Version({ version: "v1" });
      out(`RuntimeName:  ${v.runtimeName}\nRuntimeVersion:  ${v.runtimeVersion}\nRuntimeApiVersion:  ${v.runtimeApiVersion}\n`);
      return 0;
    }
    case "info": {
      const s = await rt.Status({ verbose: false });
      out(table([["CONDITION", "STATUS", "REASON", "MESSAGE"], ...(s.status?.conditions ?? []).map((c) => [c.type, String(c.status), c.reason, c.message])]));
      return 0;
    }
    case "images": {
      const r = await cri.image.ListImages({});
      out(table([["IMAGE", "IMAGE ID", "SIZE"], ...r.images.map((i) => [i.repoTags.join(",") || "<none>", short(i.id.replace(/^sha256:/, "")), `${(i.size / 1e6).toFixed(1)}MB`])]));
      return 0;
    }
    case "runp": {
      const handler = str(p, "handler")!;
      const name = str(p, "name") ?? `pod-${process.pid}-${Date.now() % 100000}`;
      const namespace = str(p, "namespace")!;
      const network = bool(p, "pod-network") ? "pod" : "node";
      const r = await rt.RunPodSandbox({ config: podConfig({ name, namespace, network }), runtimeHandler: handler });
      out(r.podSandboxId + "\n");
      return 0;
    }
    case "pods": {
      const r = await rt.ListPodSandbox({});
      out(
        table([
          ["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "RUNTIME"],
          ...r.items.map((p) => [short(p.id), ago(p.createdAt), PodSandboxState_names[p.state] ?? String(p.state), p.metadata?.name ?? "", p.metadata?.namespace ?? "", p.runtimeHandler]),
        ]),
      );
      return 0;
    }
    case "inspectp": {
      const [pod] = args;
      out(JSON.stringify(toPlain(PodSandboxStatusResponse, await rt.PodSandboxStatus({ podSandboxId: pod, verbose: true })), null, 2) + "\n");
      return 0;
    }
    case "create":
    case "run": {
      const cmd = p.rest;
      const pid = bool(p, "pid-pod") ? "pod" : "container";
      const stdin = bool(p, "stdin");
      const tty = bool(p, "tty");
      const [pod, name, image] = args;
      const sandboxConfig = await sandboxConfigOf(cri, pod);
      const network = sandboxConfig.linux?.securityContext?.namespaceOptions?.network === NamespaceMode.POD ? "pod" : "node";
      const r = await rt.CreateContainer({ podSandboxId: pod, sandboxConfig, config: containerConfig({ name, image, command: cmd, pid, stdin, tty, network }) });
      if (sub === "run") await rt.StartContainer({ containerId: r.containerId });
      out(r.containerId + "\n");
      return 0;
    }
    case "start": {
      const [c] = args;
      await rt.StartContainer({ containerId: c });
      out(c + "\n");
      return 0;
    }
    case "ps": {
      const pod = str(p, "pod");
      const all = bool(p, "all");
      const r = await rt.ListContainers({ filter: { podSandboxId: pod ?? "", state: all ? undefined : { state: 1 /* RUNNING */ } } });
      out(
        table([
          ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "POD ID"],
          ...r.containers.map((c) => [short(c.id), c.image?.image ?? "", ago(c.createdAt), ContainerState_names[c.state] ?? String(c.state), c.metadata?.name ?? "", short(c.podSandboxId)]),
        ]),
      );
      return 0;
    }
    case "inspect": {
      const [c] = args;
      out(JSON.stringify(toPlain(ContainerStatusResponse, await rt.ContainerStatus({ containerId: c, verbose: true })), null, 2) + "\n");
      return 0;
    }
    case "attach": {
      const stdin = bool(p, "stdin");
      const tty = bool(p, "tty");
      const [c] = args;
      const { url } = await rt.Attach({ containerId: c, stdin, tty, stdout: true, stderr: !tty });
      return (await streamTo(url, { stdin, tty })) ?? 0;
    }
    case "exec": {
      const cmd = p.rest;
      const stdin = bool(p, "stdin");
      const tty = bool(p, "tty");
      const [c] = args;
      if (!cmd.length) throw new UsageError("exec needs a command after --", ["cri", "exec"]);
      if (stdin || tty) {
        const { url } = await rt.Exec({ containerId: c, cmd, stdin, tty, stdout: true, stderr: !tty });
        return (await streamTo(url, { stdin, tty })) ?? 1;
      }
      const r = await rt.ExecSync({ containerId: c, cmd, timeout: Number.isFinite(timeout) ? timeout : 0 });
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      return r.exitCode;
    }
    case "port-forward": {
      const [pod, ...specs] = args;
      let ports;
      try {
        ports = specs.map(parsePortSpec);
      } catch (e) {
        throw new UsageError((e as Error).message, ["cri", "port-forward"]);
      }
      // As kubectl: a pod that is not ready is refused before anything listens.
      const st = (await rt.PodSandboxStatus({ podSandboxId: pod })).status;
      if (st?.state !== PodSandboxState.SANDBOX_READY) throw new Error(`pod ${pod} is not ready`);
      const fwd = new PortForwarder(cri, st.id, ports, {
        onError: (p, msg) => process.stderr.write(`an error occurred forwarding ${p.local} -> ${p.remote}: ${msg}\n`),
        onConnection: (p) => out(`Handling connection for ${p.local}\n`),
      });
      for (const p of await fwd.listen()) out(`Forwarding from 127.0.0.1:${p.local} -> ${p.remote}\n`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      await fwd.close();
      return 0;
    }
    case "stop": {
      const [c] = args;
      await rt.StopContainer({ containerId: c, timeout: Number.isFinite(timeout) ? timeout : 10 });
      out(c + "\n");
      return 0;
    }
    case "rm": {
      const [c] = args;
      await rt.RemoveContainer({ containerId: c });
      out(c + "\n");
      return 0;
    }
    case "stopp":
    case "rmp": {
      const [pod] = args;
      if (sub === "stopp") await rt.StopPodSandbox({ podSandboxId: pod });
      else await rt.RemovePodSandbox({ podSandboxId: pod });
      out(pod + "\n");
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(sub)}`, ["cri"]);
  }
}

/** CreateContainer carries the pod's config; rebuild what containerd uses of it from the pod's status. */
async function sandboxConfigOf(cri: CriClient, pod: string): Promise<PodSandboxConfigInit> {
  const s = (await cri.runtime.PodSandboxStatus({ podSandboxId: pod })).status;
  if (!s) throw new Error(`pod ${pod} has no status`);
  const m = s.metadata;
  const network = s.linux?.namespaces?.options?.network === NamespaceMode.POD ? "pod" : "node";
  return { ...podConfig({ name: m?.name ?? "", namespace: m?.namespace, uid: m?.uid, labels: s.labels, annotations: s.annotations, network }), metadata: m };
}

async function up(p: Parsed): Promise<number> {
  const dir = str(p, "dir");
  const qemu = bool(p, "qemu");
  const version = str(p, "containerd");
  const sandboxer = str(p, "sandboxer") as "shim" | "podsandbox" | undefined;
  if (version) process.env.SHIMLAB_CONTAINERD = version;
  const { startCriContainerd } = await import("../../harness/cri/containerd");
  const { removeCgroupDirs } = await import("../../mock-agent/runtime/runc");
  const { cniMissing, cniNetworkFor } = await import("../../harness/cri/cni");
  const noCni = cniMissing();
  const cni = noCni ? undefined : cniNetworkFor(process.pid);
  let qemuConfig: string | undefined;
  if (qemu) {
    // Sandboxes never build their guest image: it is built (or found cached) before any pod asks for it.
    const { ensureImage } = await import("../../guest-image");
    const img = await ensureImage({ runc: true, onProgress: (m, kind) => kind !== "status" && process.stderr.write(`guest image: ${m}\n`) });
    process.stdout.write(`guest image ${img.key} (${img.built ? "built" : "cached"}): ${img.manifest}\n`);
    qemuConfig = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-cri-up-")), "qemu.toml");
    fs.writeFileSync(qemuConfig, `hypervisor = "qemu"\n[qemu]\naccel = "auto"\nmemory_mb = 512\nguest_runtime = "runc"\n`);
  }
  const env = await startCriContainerd({ dir, cni, sandboxer, shimlabHandlers: qemuConfig ? { "shimlab-qemu": qemuConfig } : undefined });
  process.stdout.write(
    `containerd ${env.ctd.peer.version} (${env.ctd.peer.origin}), pid ${env.ctd.pid}, serves CRI at ${env.ctd.address}\n` +
      `  images: ${env.images.pause}, ${env.images.busybox}; handlers: shimlab, runc${qemu ? ", shimlab-qemu" : ""}${sandboxer ? ` (shimlab's: sandboxer = "${sandboxer}")` : ""}\n` +
      (cni ? `  pod network: bridge ${cni.bridge}, ${cni.subnet} (runp --pod-network)\n` : `  no pod network: ${noCni}\n`) +
      `  try: shimlab cri --address ${env.ctd.address} runp --name demo${cni ? " --pod-network" : ""}${qemu ? " --handler shimlab-qemu" : ""}\n` +
      `Ctrl-C removes its pods and stops it.\n`,
  );
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  const pods = await env.cri.runtime.ListPodSandbox({}).catch(() => ({ items: [] }));
  for (const p of pods.items) {
    await env.cri.runtime.StopPodSandbox({ podSandboxId: p.id }).catch(() => undefined);
    await env.cri.runtime.RemovePodSandbox({ podSandboxId: p.id }).catch(() => undefined);
  }
  const cg = env.ctd.cgroupParent;
  await env.destroy();
  removeCgroupDirs(cg);
  if (qemuConfig) fs.rmSync(path.dirname(qemuConfig), { recursive: true, force: true });
  process.stdout.write("stopped\n");
  return 0;
}

/**
 * Joins this terminal to a CRI stream: output to stdout/stderr, stdin to the process (raw when
 * it is a terminal and -t), window size on resize. The exit code, or null when the server
 * reported no exit (attach, or an error it printed).
 */
async function streamTo(url: string, o: { stdin: boolean; tty: boolean }): Promise<number | null> {
  const st = await CriStream.open(url);
  st.on("stdout", (d) => process.stdout.write(d));
  st.on("stderr", (d) => process.stderr.write(d));
  const raw = o.tty && o.stdin && process.stdin.isTTY;
  const onResize = () => st.resize(process.stdout.columns, process.stdout.rows);
  if (o.stdin) {
    if (raw) process.stdin.setRawMode(true);
    // v4 cannot close stdin alone, and closing the stream would lose the output still to come:
    // at stdin's end nothing is sent (a command waiting for EOF is ended with Ctrl-C).
    process.stdin.on("data", (d: Buffer) => st.write(d));
  }
  if (o.tty && process.stdout.isTTY) {
    onResize();
    process.stdout.on("resize", onResize);
  }
  try {
    const r = await st.done;
    if (r.exitCode === null && r.status && r.status.status !== "Success") process.stderr.write(`shimlab cri: ${r.status.message ?? JSON.stringify(r.status)}\n`);
    return r.exitCode;
  } finally {
    if (raw) process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stdout.off("resize", onResize);
  }
}
