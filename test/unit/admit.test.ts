// What a VM sandbox refuses before anything boots, with the field named.
import { describe, it, expect } from "vitest";
import { admitInVm } from "../../src/hypervisor/qemu/admit";
import { ErrdefsError } from "../../src/errdefs";

const spec = (namespaces: string[], mounts: { destination: string; options: string[] }[] = []) => ({
  ociVersion: "1.0.2",
  linux: { namespaces: namespaces.map((type) => ({ type })) },
  mounts,
});
const refusal = (s: unknown) => {
  try {
    admitInVm(s as never);
    return null;
  } catch (e) {
    return e instanceof ErrdefsError ? { kind: e.kind, message: e.message } : String(e);
  }
};

describe("a VM sandbox admits", () => {
  it("a pod with its own network and IPC namespaces, and slave or private mounts", () => {
    expect(refusal(spec(["pid", "ipc", "uts", "mount", "network"], [{ destination: "/v", options: ["rbind", "rslave"] }]))).toBeNull();
    expect(refusal({ ociVersion: "1.0.2" })).toBeNull();
  });

  it("refuses the host's network (hostNetwork), the host's IPC (hostIPC) and bidirectional propagation, naming each", () => {
    expect(refusal(spec(["pid", "ipc", "uts", "mount"]))).toMatchObject({ kind: "InvalidArgument", message: expect.stringMatching(/^hostNetwork: /) });
    expect(refusal(spec(["pid", "uts", "mount", "network"]))).toMatchObject({ kind: "InvalidArgument", message: expect.stringMatching(/^hostIPC: /) });
    expect(refusal(spec(["pid", "ipc", "uts", "mount", "network"], [{ destination: "/v", options: ["rbind", "rshared"] }]))).toMatchObject({
      kind: "NotImplemented",
      message: expect.stringMatching(/^mount \/v: propagation Bidirectional/),
    });
  });
});
