// Kata's grpc.Spec back into an OCI config.json for runc (the agent side of
// the shim's OCI-to-gRPC copy). Field names follow the OCI JSON spelling.
import type * as g from "../gen/grpc";
import type { OciLinuxResources, OciProcess, OciSpec } from "../oci/spec";

const nonEmpty = <T>(a: T[] | undefined): T[] | undefined => (a && a.length ? a : undefined);

export function processFromGrpc(p: g.Process): OciProcess {
  const caps = p.Capabilities;
  return {
    terminal: p.Terminal || undefined,
    consoleSize: p.ConsoleSize && (p.ConsoleSize.Height || p.ConsoleSize.Width) ? { height: p.ConsoleSize.Height, width: p.ConsoleSize.Width } : undefined,
    user: {
      uid: p.User?.UID ?? 0,
      gid: p.User?.GID ?? 0,
      additionalGids: nonEmpty(p.User?.AdditionalGids),
      username: p.User?.Username || undefined,
    },
    args: p.Args,
    env: p.Env,
    cwd: p.Cwd || "/",
    capabilities: caps
      ? {
          bounding: caps.Bounding,
          effective: caps.Effective,
          inheritable: caps.Inheritable,
          permitted: caps.Permitted,
          ambient: caps.Ambient,
        }
      : undefined,
    rlimits: nonEmpty(p.Rlimits.map((r) => ({ type: r.Type, hard: r.Hard, soft: r.Soft }))),
    noNewPrivileges: p.NoNewPrivileges || undefined,
    apparmorProfile: p.ApparmorProfile || undefined,
    oomScoreAdj: p.OOMScoreAdj || undefined,
    selinuxLabel: p.SelinuxLabel || undefined,
  };
}

export function resourcesFromGrpc(r: g.LinuxResources): OciLinuxResources {
  const out: OciLinuxResources = {};
  if (r.Devices.length) out.devices = r.Devices.map((d) => ({ allow: d.Allow, type: d.Type || undefined, major: d.Major, minor: d.Minor, access: d.Access || undefined }));
  if (r.Memory) {
    const m = r.Memory;
    out.memory = {
      limit: m.Limit || undefined,
      reservation: m.Reservation || undefined,
      swap: m.Swap || undefined,
      kernel: m.Kernel || undefined,
      kernelTCP: m.KernelTCP || undefined,
      swappiness: m.Swappiness || undefined,
      disableOOMKiller: m.DisableOOMKiller || undefined,
    };
  }
  if (r.CPU) {
    const c = r.CPU;
    out.cpu = {
      shares: c.Shares || undefined,
      quota: c.Quota || undefined,
      period: c.Period || undefined,
      realtimeRuntime: c.RealtimeRuntime || undefined,
      realtimePeriod: c.RealtimePeriod || undefined,
      cpus: c.Cpus || undefined,
      mems: c.Mems || undefined,
    };
  }
  if (r.Pids) out.pids = { limit: r.Pids.Limit };
  if (r.HugepageLimits.length) out.hugepageLimits = r.HugepageLimits.map((h) => ({ pageSize: h.Pagesize, limit: h.Limit }));
  return out;
}

export function specFromGrpc(s: g.Spec): OciSpec {
  const linux = s.Linux;
  const spec: OciSpec = {
    ociVersion: s.Version || "1.0.2",
    process: s.Process ? processFromGrpc(s.Process) : undefined,
    root: s.Root ? { path: s.Root.Path, readonly: s.Root.Readonly || undefined } : undefined,
    hostname: s.Hostname || undefined,
    mounts: s.Mounts.map((m) => ({ destination: m.destination, type: m.type || undefined, source: m.source || undefined, options: nonEmpty(m.options) })),
    annotations: Object.keys(s.Annotations).length ? s.Annotations : undefined,
  };
  if (linux) {
    spec.linux = {
      uidMappings: nonEmpty(linux.UIDMappings.map((m) => ({ containerID: m.ContainerID, hostID: m.HostID, size: m.Size }))),
      gidMappings: nonEmpty(linux.GIDMappings.map((m) => ({ containerID: m.ContainerID, hostID: m.HostID, size: m.Size }))),
      sysctl: Object.keys(linux.Sysctl).length ? linux.Sysctl : undefined,
      resources: linux.Resources ? resourcesFromGrpc(linux.Resources) : undefined,
      cgroupsPath: linux.CgroupsPath || undefined,
      namespaces: linux.Namespaces.map((n) => ({ type: n.Type, path: n.Path || undefined })),
      devices: nonEmpty(linux.Devices.map((d) => ({ path: d.Path, type: d.Type, major: d.Major, minor: d.Minor, fileMode: d.FileMode || undefined, uid: d.UID, gid: d.GID }))),
      seccomp: linux.Seccomp
        ? {
            defaultAction: linux.Seccomp.DefaultAction,
            architectures: nonEmpty(linux.Seccomp.Architectures),
            flags: nonEmpty(linux.Seccomp.Flags),
            syscalls: linux.Seccomp.Syscalls.map((c) => ({
              names: c.Names,
              action: c.Action,
              errnoRet: c.errnoret,
              args: nonEmpty(c.Args.map((a) => ({ index: a.Index, value: a.Value, valueTwo: a.ValueTwo || undefined, op: a.Op }))),
            })),
          }
        : undefined,
      rootfsPropagation: linux.RootfsPropagation || undefined,
      maskedPaths: nonEmpty(linux.MaskedPaths),
      readonlyPaths: nonEmpty(linux.ReadonlyPaths),
      mountLabel: linux.MountLabel || undefined,
    };
  }
  return JSON.parse(JSON.stringify(spec)); // drop the undefineds
}
