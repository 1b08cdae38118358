// The containers of a warm VM's rehearsal: a pod's two kinds, as CRI asks the runtime for them. The
// guest's agent runs them through its runtime (mock-agent/rehearse.ts); the factory sends the agent
// the calls that would create one, refused before they change anything, for the agent to decode
// (hypervisor/factory/rehearse-calls.ts).
import type { OciMount, OciSpec } from "./spec";
import { DEFAULT_MOUNTS } from "./default-mounts";

export const REHEARSAL_ID = "shimlab-rehearsal";

/** The files CRI binds into a pod's containers, here on the share beside the root filesystem. */
export interface RehearsalFiles {
  hosts: string;
  hostname: string;
  resolvConf: string;
}

const CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"];
const bind = (destination: string, source: string, options: string[]): OciMount => ({ destination, type: "bind", source, options });

/**
 * What CRI asks of the runtime for a pod's two kinds of container, with a busybox of the guest's own
 * as the program: the sandbox's pause container (read-only root, resolv.conf bound, up until it is
 * killed, for the other to join), and a container of the pod (its /etc files bound, the cgroup
 * filesystem mounted, the sandbox's IPC and UTS namespaces joined through the runtime's `join`).
 */
export function rehearsalSpec(kind: "sandbox" | "container", rootfs: string, files: RehearsalFiles): OciSpec {
  const sandbox = kind === "sandbox";
  const mounts: OciMount[] = DEFAULT_MOUNTS.map((m) => ({ ...m, options: [...(m.options ?? [])] }));
  // CRI mounts the pod's /dev/shm again over the default one, with the same options (containerd's specs show both)
  const defaultShm = mounts.find((m) => m.destination === "/dev/shm")!;
  const shm: OciMount = { ...defaultShm, options: [...(defaultShm.options ?? [])] };
  if (sandbox) mounts.push(shm, bind("/etc/resolv.conf", files.resolvConf, ["rbind", "ro"]));
  else
    mounts.push(
      { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] },
      bind("/etc/hostname", files.hostname, ["rbind", "rprivate", "rw"]),
      bind("/etc/hosts", files.hosts, ["rbind", "rprivate", "rw"]),
      bind("/etc/resolv.conf", files.resolvConf, ["rbind", "rprivate", "rw"]),
      shm,
    );
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: sandbox ? { uid: 65535, gid: 65535 } : { uid: 0, gid: 0 },
      // the sandbox stays up for the container to join; the destroy at the end ends it
      args: sandbox ? ["/bin/busybox", "sleep", "600"] : ["/bin/busybox", "true"],
      env: ["PATH=/bin"],
      cwd: "/",
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      noNewPrivileges: sandbox,
    },
    root: { path: rootfs, readonly: sandbox },
    hostname: sandbox ? REHEARSAL_ID : undefined,
    mounts,
    linux: {
      // the network is the guest's own in a VM; a container of the pod joins the sandbox's IPC and UTS
      namespaces: sandbox ? [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }] : [{ type: "pid" }, { type: "mount" }],
      // containerd's defaults: crun masks each path, and turns the device rule into a BPF program (cgroup v2)
      maskedPaths: ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
      resources: { devices: [{ allow: false, access: "rwm" }], ...(sandbox ? { cpu: { shares: 2 } } : {}) },
    },
  };
}

