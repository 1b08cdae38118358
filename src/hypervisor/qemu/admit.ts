// What a VM cannot give a container, refused before anything boots, as
// Kata's documented limitations say: the host's network or IPC namespace
// (the guest has its own kernel), and bidirectional mount propagation (a
// mount made in the guest cannot reach the host: the guest sees the host's
// files through a share, not its mount table). Left to the guest they would
// fail late and obscurely (critest's HostNetwork spec ran into a 60 s
// timeout); refused here, the caller learns which field at once.
import type { OciSpec } from "../../oci/spec";
import { invalidArgument, notImplemented } from "../../errdefs";

const hasNamespace = (spec: OciSpec, type: string) => (spec.linux?.namespaces ?? []).some((n) => n.type === type);

export function admitInVm(spec: OciSpec): void {
  if (!spec.linux) return;
  if (!hasNamespace(spec, "network")) {
    throw invalidArgument("hostNetwork: a VM sandbox cannot share the host's network namespace (the spec has no network namespace of its own); give the pod a network of its own (CNI), or run it with a runc handler");
  }
  if (!hasNamespace(spec, "ipc")) {
    throw invalidArgument("hostIPC: a VM sandbox cannot share the host's IPC namespace (the spec has no IPC namespace of its own); run the pod with a runc handler");
  }
  for (const m of spec.mounts ?? []) {
    if ((m.options ?? []).some((o) => o === "rshared" || o === "shared")) {
      throw notImplemented(`mount ${m.destination}: propagation Bidirectional (rshared) crosses the VM: a mount made in the guest cannot reach the host; use HostToContainer (rslave) or none`);
    }
  }
}
