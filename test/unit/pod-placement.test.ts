// Which pod a task belongs to, read from its annotations in Kata's order of
// keys; and Kata's pid-namespace hand-off to the agent.
import { describe, it, expect } from "vitest";
import { placement } from "../../src/pod/container-type";
import { specToGrpc, takePidNamespace } from "../../src/agent/spec";
import { ErrdefsError } from "../../src/errdefs";

const CRI = { type: "io.kubernetes.cri.container-type", id: "io.kubernetes.cri.sandbox-id" };
const CRIO = { type: "io.kubernetes.cri-o.ContainerType", id: "io.kubernetes.cri-o.SandboxID" };
const DOCKER = { type: "io.kubernetes.docker.type", id: "io.kubernetes.sandbox.id" };

function refusal(f: () => unknown): ErrdefsError {
  try {
    f();
  } catch (e) {
    return e as ErrdefsError;
  }
  throw new Error("expected a refusal");
}

describe("pod placement from annotations", () => {
  it("no type key: a one-container sandbox of its own", () => {
    expect(placement("t1", undefined)).toEqual({ type: "single_container", sandboxId: "t1" });
    expect(placement("t1", { "io.kubernetes.cri.sandbox-id": "other", unrelated: "x" })).toEqual({ type: "single_container", sandboxId: "t1" });
  });

  it("containerd CRI keys: sandbox opens the pod, container joins the named one", () => {
    expect(placement("pod1", { [CRI.type]: "sandbox", [CRI.id]: "pod1" })).toEqual({ type: "pod_sandbox", sandboxId: "pod1", decidedBy: CRI.type });
    expect(placement("c1", { [CRI.type]: "container", [CRI.id]: "pod1" })).toEqual({ type: "pod_container", sandboxId: "pod1", decidedBy: CRI.type });
  });

  it("CRI-O keys", () => {
    expect(placement("pod2", { [CRIO.type]: "sandbox", [CRIO.id]: "pod2" })).toMatchObject({ type: "pod_sandbox", sandboxId: "pod2", decidedBy: CRIO.type });
    expect(placement("c2", { [CRIO.type]: "container", [CRIO.id]: "pod2" })).toMatchObject({ type: "pod_container", sandboxId: "pod2" });
  });

  it("dockershim keys, with its podsandbox value", () => {
    expect(placement("pod3", { [DOCKER.type]: "podsandbox", [DOCKER.id]: "pod3" })).toMatchObject({ type: "pod_sandbox", sandboxId: "pod3", decidedBy: DOCKER.type });
    expect(placement("c3", { [DOCKER.type]: "container", [DOCKER.id]: "pod3" })).toMatchObject({ type: "pod_container", sandboxId: "pod3" });
  });

  it("the first type key present decides, in Kata's order (CRI, CRI-O, dockershim)", () => {
    const a = { [DOCKER.type]: "container", [CRIO.type]: "sandbox", [CRIO.id]: "x" };
    expect(placement("t", a)).toMatchObject({ type: "pod_sandbox", decidedBy: CRIO.type });
    expect(placement("t", { ...a, [CRI.type]: "container", [CRI.id]: "p" })).toMatchObject({ type: "pod_container", sandboxId: "p", decidedBy: CRI.type });
  });

  it("sandbox ids are looked up in the same order, whichever key gave the type", () => {
    expect(placement("c", { [CRIO.type]: "container", [DOCKER.id]: "from-docker", [CRI.id]: "from-cri" }).sandboxId).toBe("from-cri");
    expect(placement("c", { [DOCKER.type]: "container", [DOCKER.id]: "from-docker", [CRIO.id]: "from-crio" }).sandboxId).toBe("from-crio");
  });

  it("refuses unknown type values with InvalidArgument naming the key and the value", () => {
    for (const [key, v] of [
      [CRI.type, "pod"],
      [CRIO.type, "Sandbox"],
      [DOCKER.type, ""],
    ]) {
      const e = refusal(() => placement("t", { [key]: v }));
      expect(e.kind).toBe("InvalidArgument");
      expect(e.message).toContain(`unknown container type ${JSON.stringify(v)} in annotation ${key}`);
    }
  });

  it("refuses a container without a sandbox id (missing or empty)", () => {
    for (const a of [{ [CRI.type]: "container" }, { [CRIO.type]: "container", [CRIO.id]: "" }, { [DOCKER.type]: "container", "io.kubernetes.cri.sandbox-name": "x" }]) {
      const e = refusal(() => placement("c9", a));
      expect(e.kind).toBe("InvalidArgument");
      expect(e.message).toContain("container c9 has");
      expect(e.message).toContain("but no sandbox id");
    }
  });
});

describe("pid namespace hand-off (Kata's handlePidNamespace)", () => {
  const spec = (namespaces: { type: string; path?: string }[]) => ({ ociVersion: "1.0.2", process: { args: ["sh"], cwd: "/" }, linux: { namespaces } });

  it("a pid namespace with a path means the pod's: sandbox_pidns, and the entry goes", () => {
    for (const guest of [false, true]) {
      const g = specToGrpc(spec([{ type: "pid", path: "/proc/42/ns/pid" }, { type: "ipc", path: "/proc/42/ns/ipc" }, { type: "mount" }]), { guest, rootPath: "/r" });
      expect(takePidNamespace(g)).toBe(true);
      // The host agent can join the pod's ipc namespace by path (CRI-O names it so); a guest cannot.
      expect(g.Linux!.Namespaces).toEqual([
        { Type: "ipc", Path: guest ? "" : "/proc/42/ns/ipc" },
        { Type: "mount", Path: "" },
      ]);
    }
  });

  it("a new pid namespace (no path) or none at all: not shared", () => {
    const g = specToGrpc(spec([{ type: "pid" }, { type: "network", path: "/var/run/netns/x" }]), { guest: false, rootPath: "/r" });
    expect(takePidNamespace(g)).toBe(false);
    // The container's own pid namespace stays named: on the host, no entry at all is hostPID.
    expect(g.Linux!.Namespaces).toEqual([
      { Type: "pid", Path: "" },
      { Type: "network", Path: "/var/run/netns/x" },
    ]);
    expect(takePidNamespace(specToGrpc(spec([{ type: "mount" }]), { guest: true, rootPath: "/r" }))).toBe(false);
  });
});
