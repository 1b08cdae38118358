// Which of critest's specs the suite runs: all of them, on every handler and
// containerd version alike, except those listed here, each with the reason it
// cannot be run on these machines. A spec is never left out because a handler
// fails it. Names are ginkgo's full spec texts (container texts and the
// leaf's, space-joined); critest is run with -ginkgo.dry-run first and the
// run is refused if one of them is still selected, or names no spec at all
// (a critest upgrade renamed it, and the list must be looked at again).

export interface LeftOutSpec {
  name: string;
  reason: string;
}

export const LEFT_OUT: readonly LeftOutSpec[] = [
  {
    name: "[k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]",
    reason:
      "pulls gcr.io/k8s-staging-cri-tools/test-image-digest by upstream's manifest digest, which no stand-in can have " +
      "(a digest is the hash of upstream's own manifest, and the registries are out of reach)",
  },
];

/** critest's suite description: ginkgo matches -focus/-skip against it, a space and the spec's text. */
export const CRITEST_SUITE = "CRI validation";

/** A regexp matching exactly these spec texts, for -ginkgo.skip. */
export function skipPattern(specs: readonly LeftOutSpec[] = LEFT_OUT): string {
  return specs.map((s) => `^${CRITEST_SUITE} ${s.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`).join("|");
}

/**
 * Skips that containerd's CRI decides for a handler before any shim is asked:
 * a spec runc passes and critest skips on shimlab with one of these messages,
 * on a containerd that shows the difference, is not shimlab's failure. Each is
 * a named difference (src/harness/peers/differences.ts) and the test still
 * lists every spec it excuses.
 */
export const CONTAINERD_DECIDED_SKIPS: readonly { difference: string; message: string }[] = [
  { difference: "cri-runtime-features", message: "no runtime handler found which supports user namespaces" },
  { difference: "cri-runtime-features", message: "runtime does not implement recursive readonly mounts" },
];

/** The difference that excuses a result on this containerd, if one does. */
export function excusedBy(r: { state: string; message: string }, shows: (difference: string) => boolean): string | null {
  if (r.state !== "skipped") return null;
  const hit = CONTAINERD_DECIDED_SKIPS.find((s) => r.message === s.message && shows(s.difference));
  return hit ? hit.difference : null;
}

/**
 * Specs a VM sandbox refuses by design, each failing at once with shimlab's
 * own error naming the field (src/hypervisor/qemu/admit.ts), as Kata's
 * limitations say: run, and held to failing with exactly that error, instead
 * of the bar "passes where runc passes".
 */
export const VM_REFUSALS: readonly { name: string; reason: string; error: string }[] = [
  {
    name: "[k8s.io] Security Context NamespaceOption runtime should support HostNetwork is true",
    reason: "a VM has its own kernel and network stack: it cannot share the host's network namespace",
    error: "hostNetwork: a VM sandbox cannot share the host's network namespace",
  },
  {
    name: "[k8s.io] Streaming runtime should support streaming interfaces runtime should support portforward in host network",
    reason: "the pod asks for the host's network, which a VM cannot share",
    error: "hostNetwork: a VM sandbox cannot share the host's network namespace",
  },
  {
    name: "[k8s.io] Security Context NamespaceOption runtime should support HostIpc is true",
    reason: "a VM has its own kernel: the host's System V IPC objects are not in it",
    error: "hostIPC: a VM sandbox cannot share the host's IPC namespace",
  },
  {
    name: "[k8s.io] Container Mount Propagation runtime should support mount propagation mount with 'rshared' should support propagation from host to container and vice versa",
    reason: "a mount made inside the guest cannot reach the host: the guest shares the host's files, not its mount table",
    error: "propagation Bidirectional (rshared) crosses the VM",
  },
];

/** Why a VM run's result is not held to runc's, if it is one of the refusals (and failed with its error). */
export function vmRefusal(r: { name: string; state: string; message: string }): string | null {
  const hit = VM_REFUSALS.find((v) => v.name === r.name);
  return hit && r.state === "failed" && r.message.includes(hit.error) ? `refused in a VM: ${hit.reason}` : null;
}

/**
 * Left out on a `sandboxer = "shim"` handler where containerd shows difference
 * shim-sandboxer-host-network: a hostNetwork pod there crashes containerd
 * itself (2.0-2.2), before any shim is asked, and every later spec would fail
 * for want of a containerd. runc still runs them (the bar); on the shim
 * sandboxer they are skipped, listed, and excused only as skipped.
 */
export const SHIM_SANDBOXER_LEFT_OUT: readonly LeftOutSpec[] = [
  {
    name: "[k8s.io] Security Context NamespaceOption runtime should support HostNetwork is true",
    reason: "a hostNetwork pod with the shim sandboxer crashes containerd 2.1.9 (nil spec in NewBundle; difference shim-sandboxer-host-network)",
  },
  {
    name: "[k8s.io] Streaming runtime should support streaming interfaces runtime should support portforward in host network",
    reason: "a hostNetwork pod with the shim sandboxer crashes containerd 2.1.9 (nil spec in NewBundle; difference shim-sandboxer-host-network)",
  },
];

/** Why a shim-sandboxer run's result is not held to runc's: one of the specs left out there, skipped. */
export function shimSandboxerLeftOut(r: { name: string; state: string }): string | null {
  const hit = SHIM_SANDBOXER_LEFT_OUT.find((s) => s.name === r.name);
  return hit && r.state === "skipped" ? `left out with the shim sandboxer: ${hit.reason}` : null;
}

/**
 * What CRI-O 1.34 decides for any `runtime_type = "vm"` handler (Kata's
 * included) before or instead of asking the shim, each read in its source:
 * a spec runc passes there and shimlab does not, with exactly this outcome, is
 * CRI-O's and not shimlab's. The test lists every spec it excuses.
 */
export const CRIO_VM_DECIDED: readonly { state: "skipped" | "failed"; name?: string; message: string; reason: string }[] = [
  {
    state: "skipped",
    message: "no runtime handler found which supports user namespaces",
    reason: "CRI-O reports user namespace support only for OCI handlers whose runtime says so; a vm handler has no such features",
  },
  {
    state: "skipped",
    message: "runtime does not implement recursive readonly mounts",
    reason: "CRI-O reports recursive read-only mounts only for OCI handlers (runc's features); a vm handler has no such features",
  },
  {
    state: "failed",
    name: "[k8s.io] Streaming runtime should support streaming interfaces runtime should support portforward [Conformance]",
    message: "Timed out",
    reason: "CRI-O's runtimeVM.PortForwardContainer returns nil without forwarding anything (internal/oci/runtime_vm.go)",
  },
  {
    state: "failed",
    name: "[k8s.io] Streaming runtime should support streaming interfaces runtime should support portforward in host network",
    message: "Timed out",
    reason: "CRI-O's runtimeVM.PortForwardContainer returns nil without forwarding anything (internal/oci/runtime_vm.go)",
  },
  {
    state: "failed",
    name: "[k8s.io] Container runtime should support log runtime should support reopening container log [Conformance]",
    message: "new container log file should be created",
    reason: "CRI-O's runtimeVM.ReopenContainerLog is a no-op: the log file is never reopened, whatever the shim does",
  },
];

/**
 * CRI-O's own races in specs that never reach a runtime handler (its image
 * service): seen failing on runc's handler too, in some runs and not others.
 */
export const CRIO_HANDLER_INDEPENDENT: readonly { name: string; message: string; reason: string }[] = [
  {
    name: "[k8s.io] Image Consistency should not fail on simultaneous RemoveImage calls [Conformance]",
    message: "delete image: identifier is not an image",
    reason: "CRI-O 1.34's image store loses a race between concurrent RemoveImage calls; no handler takes part (it failed on runc too in some of the runs here)",
  },
];

/** Why a CRI-O vm-handler result is CRI-O's own, if it is. */
export function crioVmDecided(r: { name: string; state: string; message: string }): string | null {
  const hit = CRIO_VM_DECIDED.find((d) => d.state === r.state && (!d.name || d.name === r.name) && r.message.includes(d.message));
  if (hit) return `CRI-O decides for vm handlers: ${hit.reason}`;
  const race = CRIO_HANDLER_INDEPENDENT.find((d) => d.name === r.name && r.state === "failed" && r.message.includes(d.message));
  return race ? `CRI-O's own, no handler involved: ${race.reason}` : null;
}
