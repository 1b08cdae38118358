// The bundle's OCI spec as kata's grpc.Spec (Kata's OCItoGRPC), then Kata's
// constrainGRPCSpec: hooks run on the host, never in the agent; namespace
// paths name host namespaces the agent cannot join, so they are emptied (the
// agent arranges pod sharing itself) — except, with no VM, the network
// namespace, which a host-process agent must join as given.
import type * as g from "../gen/grpc";
import type { OciLinuxResources, OciProcess, OciSpec } from "../oci/spec";
import { ALLOW_ALL_DEVICES, allowsAllDevices, type DeviceRule } from "../oci/devices";

export interface ConstrainOptions {
  /** The agent runs in a VM: network/cgroup/time namespaces go, all paths are emptied. */
  guest: boolean;
  /** Where the agent sees this container's rootfs. */
  rootPath: string;
}

const n = (v: number | undefined) => v ?? 0;

export function processToGrpc(p: OciProcess): g.ProcessInit {
  const c = p.capabilities;
  return {
    Terminal: !!p.terminal,
    ConsoleSize: p.consoleSize ? { Height: p.consoleSize.height, Width: p.consoleSize.width } : undefined,
    User: {
      UID: n(p.user?.uid),
      GID: n(p.user?.gid),
      AdditionalGids: p.user?.additionalGids ?? [],
      Username: p.user?.username ?? "",
    },
    Args: p.args ?? [],
    Env: p.env ?? [],
    Cwd: p.cwd ?? "/",
    Capabilities: c
      ? { Bounding: c.bounding ?? [], Effective: c.effective ?? [], Inheritable: c.inheritable ?? [], Permitted: c.permitted ?? [], Ambient: c.ambient ?? [] }
      : undefined,
    Rlimits: (p.rlimits ?? []).map((r) => ({ Type: r.type, Hard: r.hard, Soft: r.soft })),
    NoNewPrivileges: !!p.noNewPrivileges,
    ApparmorProfile: p.apparmorProfile ?? "",
    OOMScoreAdj: n(p.oomScoreAdj),
    SelinuxLabel: p.selinuxLabel ?? "",
  };
}

const toGrpcRule = (d: DeviceRule): g.LinuxDeviceCgroupInit => ({ Allow: !!d.allow, Type: d.type ?? "", Major: d.major ?? -1, Minor: d.minor ?? -1, Access: d.access ?? "" });

export function resourcesToGrpc(r: OciLinuxResources): g.LinuxResourcesInit {
  return {
    Devices: (r.devices ?? []).map(toGrpcRule),
    Memory: r.memory
      ? {
          Limit: n(r.memory.limit),
          Reservation: n(r.memory.reservation),
          Swap: n(r.memory.swap),
          Kernel: n(r.memory.kernel),
          KernelTCP: n(r.memory.kernelTCP),
          Swappiness: n(r.memory.swappiness),
          DisableOOMKiller: !!r.memory.disableOOMKiller,
        }
      : undefined,
    CPU: r.cpu
      ? {
          Shares: n(r.cpu.shares),
          Quota: n(r.cpu.quota),
          Period: n(r.cpu.period),
          RealtimeRuntime: n(r.cpu.realtimeRuntime),
          RealtimePeriod: n(r.cpu.realtimePeriod),
          Cpus: r.cpu.cpus ?? "",
          Mems: r.cpu.mems ?? "",
        }
      : undefined,
    Pids: r.pids ? { Limit: r.pids.limit } : undefined,
    HugepageLimits: (r.hugepageLimits ?? []).map((h) => ({ Pagesize: h.pageSize, Limit: h.limit })),
  };
}

/**
 * Kata's handlePidNamespace: the agent, not the spec, decides the pid
 * namespace. A pid namespace with a path (CRI's pid mode POD: join the pause
 * container's) becomes sandbox_pidns=true; the entry itself is removed, and
 * the agent adds its own (the sandbox's, or a new one).
 */
export function takePidNamespace(spec: g.SpecInit): boolean {
  const nss = spec.Linux?.Namespaces;
  if (!nss) return false;
  const i = nss.findIndex((ns) => ns.Type === "pid");
  if (i < 0 || !nss[i].Path) return false;
  // An entry without a path (a pid namespace of the container's own) stays: the host agent
  // tells it from no entry at all (the host's, hostPID); a guest agent makes its own anyway.
  nss.splice(i, 1);
  return true;
}

export function specToGrpc(spec: OciSpec, o: ConstrainOptions): g.SpecInit {
  const linux = spec.linux ?? {};
  let namespaces = (linux.namespaces ?? []).map((ns) => ({ Type: ns.type, Path: ns.path ?? "" }));
  if (o.guest) {
    namespaces = namespaces.filter((ns) => !["network", "cgroup", "time"].includes(ns.Type)).map((ns) => ({ Type: ns.Type, Path: ns.Type === "pid" ? ns.Path : "" }));
  } else {
    // The host agent runs beside the runtime that named these namespaces: it can join them. CRI-O
    // pins each pod namespace and names it by path (a host namespace too: hostIPC is the host's
    // ipc namespace, pinned), where containerd's CRI leaves the entry out.
    namespaces = namespaces.map((ns) => ({ Type: ns.Type, Path: ["network", "pid", "ipc", "uts"].includes(ns.Type) ? ns.Path : "" }));
  }
  // A pid path is kept only for takePidNamespace, which turns it into sandbox_pidns.
  const resources = linux.resources ? resourcesToGrpc(linux.resources) : undefined;
  let devices = (linux.devices ?? []).map((d) => ({ Path: d.path, Type: d.type, Major: d.major, Minor: d.minor, FileMode: n(d.fileMode), UID: n(d.uid), GID: n(d.gid) }));
  if (resources && o.guest) {
    // Device rules name host devices by number, and pids, block IO and network limits are the
    // host's business (Kata clears them all); CPU sets name host CPUs. Only the rule allowing
    // every device survives: it names no number, and it is how the agent knows the container is
    // privileged in its guest.
    const privileged = (linux.resources?.devices ?? []).some(allowsAllDevices);
    resources.Devices = privileged ? [toGrpcRule(ALLOW_ALL_DEVICES)] : [];
    resources.Pids = undefined;
    if (resources.CPU) resources.CPU.Cpus = "";
    // A privileged container's spec lists every device of the host (containerd's
    // oci.WithHostDevices). No host device reaches the guest, so the list names nodes the guest
    // does not have, or has under other numbers: the agent gives it the guest's own instead.
    if (privileged) devices = [];
  }
  const seccomp = linux.seccomp as
    | { defaultAction?: string; architectures?: string[]; flags?: string[]; syscalls?: { names?: string[]; action?: string; errnoRet?: number; args?: { index: number; value: number; valueTwo?: number; op: string }[] }[] }
    | undefined;
  return {
    Version: spec.ociVersion ?? "",
    Process: spec.process ? processToGrpc(spec.process) : undefined,
    Root: { Path: o.rootPath, Readonly: !!spec.root?.readonly },
    Hostname: spec.hostname ?? "",
    Mounts: (spec.mounts ?? []).map((m) => ({ destination: m.destination, source: m.source ?? "", type: m.type ?? "", options: m.options ?? [] })),
    Hooks: undefined,
    Annotations: spec.annotations ?? {},
    Linux: {
      UIDMappings: (linux.uidMappings ?? []).map((m) => ({ HostID: m.hostID, ContainerID: m.containerID, Size: m.size })),
      GIDMappings: (linux.gidMappings ?? []).map((m) => ({ HostID: m.hostID, ContainerID: m.containerID, Size: m.size })),
      Sysctl: linux.sysctl ?? {},
      Resources: resources,
      CgroupsPath: linux.cgroupsPath ?? "",
      Namespaces: namespaces,
      Devices: devices,
      Seccomp: seccomp
        ? {
            DefaultAction: seccomp.defaultAction ?? "",
            Architectures: seccomp.architectures ?? [],
            Flags: seccomp.flags ?? [],
            Syscalls: (seccomp.syscalls ?? []).map((s) => ({
              Names: s.names ?? [],
              Action: s.action ?? "",
              errnoret: s.errnoRet,
              Args: (s.args ?? []).map((a) => ({ Index: a.index, Value: a.value, ValueTwo: a.valueTwo ?? 0, Op: a.op })),
            })),
          }
        : undefined,
      RootfsPropagation: linux.rootfsPropagation ?? "",
      MaskedPaths: linux.maskedPaths ?? [],
      ReadonlyPaths: linux.readonlyPaths ?? [],
      MountLabel: linux.mountLabel ?? "",
    },
  };
}
