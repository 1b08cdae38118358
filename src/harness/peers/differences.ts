// What the containerd matrix found to differ between containerd versions (and
// between their runc shims), each measured here against the real programs.
// Tests name a difference by id and assert the version's real behaviour; the
// README's table is this list. `seen` says how it was established.
import type { ContainerdPeer } from "./containerd";

export interface VersionDifference {
  id: string;
  /** The first containerd series that behaves this way ("1.6" for all that the suite runs). */
  from: string;
  /** The first series that no longer does, when known. */
  before?: string;
  what: string;
  seen: string;
}

export const DIFFERENCES: VersionDifference[] = [
  {
    id: "shim-env",
    from: "1.7",
    what: "containerd adds GRPC_ADDRESS, NAMESPACE and MAX_SHIM_VERSION=2 to the shim's environment (1.6: TTRPC_ADDRESS only); 2.1 still says 2, so the environment cannot tell 1.7 from 2.1",
    seen: "a recording shim wrapper under each containerd (test/integration/emulator-fidelity.test.ts)",
  },
  {
    id: "bootstrap-json",
    from: "2.0",
    what: "containerd writes bootstrap.json in the bundle for every shim; 2.1's runc shim answers start with JSON {version 3, ttrpc} (task v3) and writes no `address` file, where 1.x's writes `address`",
    seen: "bundle files after ctr run -d (test/helpers/cri.ts bundleAddress reads either)",
  },
  {
    id: "no-bootstrap-params",
    from: "1.6",
    before: "2.3",
    what: "start gets no BootstrapParams on stdin (that is containerd 2.3+): only the runtime options Any when there are options",
    seen: "the recording wrapper's stdin under each containerd",
  },
  {
    id: "v3-result-refused",
    from: "1.7",
    before: "2.0",
    what: "1.7 refuses a version 3 bootstrap result (`unsupported shim version (3): not implemented`), so SHIMLAB_SHIM_PROTOCOL (task v3) is for containerd 2.x only",
    seen: "ctr run with SHIMLAB_SHIM_PROTOCOL=ttrpc under 1.7",
  },
  {
    id: "grpc-address-bare",
    from: "2.0",
    what: "containerd 2.x first dials a gRPC shim's address with net.Dial(\"unix\", address): it must be the bare socket path (a unix:// address fails with `dial unix unix:///…: no such file or directory`); ttrpc takes unix://",
    seen: "ctr run with SHIMLAB_SHIM_PROTOCOL=grpc under 2.1; core/runtime/v2/shim.go grpcDialContext",
  },
  {
    id: "grpc-shim-dropped",
    from: "2.0",
    what: "containerd 2.1.9 takes a gRPC shim for dead the moment it connects: grpc.NewClient starts Idle and the close watcher (WaitForStateChange from Ready) stops on Idle, runs `cleaning up dead shim` and removes the bundle, so Create fails with `no config.json`; gRPC shims cannot serve a real 2.1",
    seen: "ctr run with SHIMLAB_SHIM_PROTOCOL=grpc under 2.1 (containerd's log: `connecting to shim` then `shim disconnected` within 1 ms)",
  },
  {
    id: "cri-runtime-features",
    from: "2.0",
    what: "CRI learns a runtime handler's features (recursive read-only mounts, user namespaces) from `<shim> -info` only when its runtime_type is io.containerd.runc.v2; any other shim's handler (Kata's, shimlab's) reports none, so critest skips those specs on it before a shim is asked",
    seen: "critest on containerd 2.1 (test/integration/critest.test.ts): the handlers' RuntimeHandlerFeatures in Status; internal/cri/server/service.go introspectRuntimeFeatures",
  },
  {
    id: "leaked-shim-cleanup",
    from: "1.7",
    what: "after a restart, containerd removes a non-sandbox shim whose Pids answer is empty (containerd#6860): a runc task that exited while containerd was down is gone, its exit code lost; shimlab, like Kata, answers Pids with the sandbox's pid, so its task stays STOPPED with its exit code",
    seen: "test/integration/restart.test.ts",
  },
  {
    id: "runc-task-delete-lost",
    from: "2.1",
    what: "2.1's runc shim can exit on the Shutdown that follows Delete before its publisher forwards /tasks/delete (1 in 10 here); 1.6 and 1.7 never lost one in the same run",
    seen: "ctr events around ctr run -d / kill / task delete, 10 runs per version",
  },
  {
    id: "cri-sandbox-state",
    from: "2.0",
    what: "CRI asks a pod's started sandbox task for its State once where 1.6 and 1.7 ask twice; every other call of a pod's life (start, Create, Connect, Start, Wait, Kill, Delete, Shutdown, delete, per task) is the same on 1.6, 1.7 and 2.1",
    seen: "shimlab's trace of a CRI pod's whole life, counted per task (test/integration/cri-calls.test.ts)",
  },
  {
    id: "shim-sandboxer-host-network",
    from: "2.0",
    before: "2.3",
    what: "with sandboxer = \"shim\", a hostNetwork pod crashes containerd: CRI passes no spec for it and NewBundle calls typeurl.Is on a nil Any (a nil pointer dereference in the gRPC handler, and containerd exits); a pod with its own (CNI) network gets an empty spec and works. Fixed by containerd#13131 in 2.3.0",
    seen: "RunPodSandbox of a hostNetwork pod on a shim-sandboxer handler under 2.1.9: the CRI connection drops and containerd's process is gone; core/runtime/v2/bundle.go",
  },
  {
    id: "shim-sandboxer-runtime-options",
    from: "2.0",
    before: "2.4",
    what: "with sandboxer = \"shim\", a runtime with an `options` table that is not runc's cannot start a container: CRI hands the task the sandbox's address through runc's Options (client WithTaskAPIEndpoint), and runtimeoptions.v1.Options (ConfigPath) fails with `can't unmarshal type \"runtimeoptions.v1.Options\" to output \"containerd.runc.v1.Options\"`; the pod's own shim gets the options on `start`. shimlab's handlers and `shimlab install --sandboxer shim` pass the config in the launcher's environment instead. Fixed in 2.4 (v2.4.0-beta.0: the task address gets fields of its own)",
    seen: "crictl start of a container in a shim-sandboxer pod whose handler has ConfigPath, under 2.1.9; client/task_opts.go",
  },
  {
    id: "config-v3",
    from: "2.0",
    what: "containerd 2.x reads config version 3: the CRI plugin is split into io.containerd.cri.v1.images (snapshotter, pinned sandbox image, registry), io.containerd.cri.v1.runtime (runtimes, CNI with bin_dirs) and io.containerd.grpc.v1.cri (the streaming server); NRI is on by default",
    seen: "`containerd config default` of each version; src/harness/cri/config.ts",
  },
];

export function difference(id: string): VersionDifference {
  const d = DIFFERENCES.find((x) => x.id === id);
  if (!d) throw new Error(`no version difference ${JSON.stringify(id)}`);
  return d;
}

const num = (series: string) => {
  const [a, b] = series.split(".").map(Number);
  return a * 1000 + b;
};

/** Whether this containerd shows the difference. */
export function shows(peer: Pick<ContainerdPeer, "major" | "minor">, id: string): boolean {
  const d = difference(id);
  const v = peer.major * 1000 + peer.minor;
  return v >= num(d.from) && (!d.before || v < num(d.before));
}
