// Bundles as containerd makes them for `ctr run`: a config.json in containerd's
// default Linux spec and a rootfs (a directory path, or mounts sent in Create).
import fs from "node:fs";
import path from "node:path";
import type { OciSpec } from "../oci/spec";
import { DEFAULT_MOUNTS } from "../oci/default-mounts";

export const DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

export interface SpecOptions {
  args: string[];
  env?: string[];
  cwd?: string;
  terminal?: boolean;
  /** An absolute rootfs directory; by default "rootfs" (relative), filled by Create's mounts. */
  rootPath?: string;
  annotations?: Record<string, string>;
  hostname?: string;
  namespace?: string;
  /** Namespaces to create; containerd's default is pid, ipc, uts, mount, network. */
  namespaces?: string[];
  memoryLimit?: number;
  /** Memory plus swap (OCI's memory.swap); equal to memoryLimit means no swap at all. */
  memorySwap?: number;
}

export function defaultSpec(id: string, o: SpecOptions): OciSpec {
  return {
    ociVersion: "1.0.2-dev",
    process: {
      terminal: !!o.terminal,
      user: { uid: 0, gid: 0 },
      args: o.args,
      env: o.env ?? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      cwd: o.cwd ?? "/",
      capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: o.rootPath ?? "rootfs" },
    hostname: o.hostname,
    mounts: [
      ...DEFAULT_MOUNTS.map((m) => ({ ...m, options: [...(m.options ?? [])] })),
      { destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    ],
    annotations: o.annotations,
    linux: {
      resources: {
        devices: [{ allow: false, access: "rwm" }],
        ...(o.memoryLimit ? { memory: { limit: o.memoryLimit, ...(o.memorySwap ? { swap: o.memorySwap } : {}) } } : {}),
      },
      cgroupsPath: `/${o.namespace ?? "default"}/${id}`,
      namespaces: (o.namespaces ?? ["pid", "ipc", "uts", "mount", "network"]).map((type) => ({ type })),
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}

/**
 * <dir>/<id> with config.json and an empty rootfs/ (0711), as containerd
 * prepares before `start`; with workDir, also the `work` link containerd
 * makes to the task's directory under its root (<root>/<plugin>/<ns>/<id>).
 */
export function createBundle(dir: string, id: string, spec: OciSpec, workDir?: string): string {
  const b = path.join(dir, id);
  fs.mkdirSync(b, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.join(b, "rootfs"), { recursive: true, mode: 0o711 });
  if (workDir) {
    fs.mkdirSync(workDir, { recursive: true, mode: 0o711 });
    fs.rmSync(path.join(b, "work"), { force: true });
    fs.symlinkSync(workDir, path.join(b, "work"));
  }
  fs.writeFileSync(path.join(b, "config.json"), JSON.stringify(spec, null, 2));
  return b;
}

/**
 * The shim address containerd keeps for a bundle: 2.x writes bootstrap.json
 * (the whole start result) for every shim and 2.x's runc shim writes no
 * `address`; 1.x has only the `address` file the shim wrote.
 */
export function shimAddressOf(bundle: string): string {
  const boot = path.join(bundle, "bootstrap.json");
  if (fs.existsSync(boot)) return String(JSON.parse(fs.readFileSync(boot, "utf8")).address);
  return fs.readFileSync(path.join(bundle, "address"), "utf8").trim();
}
