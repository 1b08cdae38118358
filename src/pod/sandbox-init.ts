// The process that holds a pod's namespaces when containerd created no pause
// container for it (the shim sandboxer): shimlab's static sandbox-init, run in
// the agent as the sandbox's own container, under the sandbox's id. The agent
// then does for the pod's containers what it does under a pause container:
// they join its IPC and UTS namespaces, its network namespace, and its pid
// namespace when the pod shares one. Its OCI spec is what containerd's CRI
// gives a pause container (podsandbox's sandboxContainerSpec), built from the
// pod's config instead of an image's.
import fs from "node:fs";
import path from "node:path";
import type { OciNamespace, OciSpec } from "../oci/spec";
import type { PodConfig } from "./pod-config";

/** Where the program lives inside its rootfs, relative to cwd "/" so that the agent's host runtime finds it too. */
const INIT_ARGS = ["./sandbox-init"];
/** The pause container's oom_score_adj in containerd's CRI (defaultSandboxOOMAdj). */
const SANDBOX_OOM_SCORE_ADJ = -998;
/** containerd's DefaultSandboxCPUshares. */
const SANDBOX_CPU_SHARES = 2;

export interface InitSpecOptions {
  sandboxId: string;
  /** The pod's network namespace (CNI's); none when the pod uses the node's network. */
  netns?: string;
  /** The rootfs holding the program (writeInitRootfs). */
  rootfs: string;
  /** Our own oom_score_adj: lowering below it takes CAP_SYS_RESOURCE, which a containerized node lacks. */
  ownOomScoreAdj?: number;
}

/** This process's oom_score_adj, which a child without CAP_SYS_RESOURCE cannot go below. */
export function ownOomScoreAdj(): number {
  try {
    return Number(fs.readFileSync("/proc/self/oom_score_adj", "utf8").trim()) || 0;
  } catch {
    return 0;
  }
}

/** A rootfs with nothing but the program, in the sandbox's own directory. */
export function writeInitRootfs(dir: string, program: string): string {
  if (!fs.existsSync(program)) throw new Error(`${program} is missing: run "npm run build:native"`);
  const root = path.join(dir, "init-rootfs");
  fs.mkdirSync(root, { recursive: true, mode: 0o755 });
  // Mount points made ahead: in a guest the rootfs arrives over a share runc should not have to write to.
  for (const d of ["proc", "dev"]) fs.mkdirSync(path.join(root, d), { recursive: true, mode: 0o755 });
  fs.copyFileSync(program, path.join(root, "sandbox-init"));
  fs.chmodSync(path.join(root, "sandbox-init"), 0o755);
  return root;
}

export function sandboxInitSpec(pod: PodConfig, o: InitSpecOptions): OciSpec {
  const namespaces: OciNamespace[] = [{ type: "mount" }];
  // As for a pause container: the node's network means the node's UTS name as well.
  if (pod.network !== "node") namespaces.push({ type: "network", ...(o.netns ? { path: o.netns } : {}) }, { type: "uts" });
  if (pod.pid !== "node") namespaces.push({ type: "pid" });
  if (pod.ipc !== "node") namespaces.push({ type: "ipc" });
  const sysctl = { ...pod.sysctls };
  if (pod.network !== "node") {
    // What containerd 2.x's CRI adds to every pause container with a network of its own; the same
    // pod must see the same kernel settings whichever sandboxer runs it.
    sysctl["net.ipv4.ip_unprivileged_port_start"] ??= "0";
    sysctl["net.ipv4.ping_group_range"] ??= "0 2147483647";
  }
  return {
    ociVersion: "1.1.0",
    process: {
      user: { uid: 65535, gid: 65535 },
      args: INIT_ARGS,
      env: ["PATH=/"],
      cwd: "/",
      noNewPrivileges: true,
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      // As CRI's restrict_oom_score_adj does for a pause container: never below what we run at.
      oomScoreAdj: Math.max(SANDBOX_OOM_SCORE_ADJ, o.ownOomScoreAdj ?? SANDBOX_OOM_SCORE_ADJ),
    },
    root: { path: o.rootfs, readonly: true },
    ...(pod.network !== "node" && pod.hostname ? { hostname: pod.hostname } : {}),
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    ],
    annotations: {
      "io.kubernetes.cri.container-type": "sandbox",
      "io.kubernetes.cri.sandbox-id": o.sandboxId,
    },
    linux: {
      namespaces,
      sysctl,
      resources: { cpu: { shares: SANDBOX_CPU_SHARES } },
      ...(pod.cgroupParent ? { cgroupsPath: `${pod.cgroupParent.replace(/\/+$/, "")}/${o.sandboxId}` } : {}),
      maskedPaths: ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}
