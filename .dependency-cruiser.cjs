// shimlab's layers, written once and checked in `npm test` (test/unit/layers.test.ts).
// Each layer may import itself and the layers below it; CONTRIBUTING.md's "Layers" section
// describes the same rules in words. `npx depcruise src` prints what breaks them.
//
//   foundation  src/proto src/gen src/util src/oci src/native src/errdefs*
//   ttrpc       frames, messages, the server and client
//   agent       the kata agent API client and its transports
//   hypervisor  where an agent lives (QEMU, a host process)
//   pod         sandboxes, containers, processes
//   shim        what containerd talks to
//   trace       wraps the interfaces of the layers below (loaded behind SHIMLAB_TRACE)
//   everything else (faults and the fp shim, the guest image builder, harness, scenarios, cli, ...)
//   sits on top. Errors cross the layers as errdefs kinds; only ttrpc's server and the agent client
//   turn them into status codes and back, so hypervisor and pod code need no ttrpc at all.
// mock-agent is a program of its own: foundation, ttrpc, its failpoint table and its tracer only.

const FOUNDATION = "^src/(proto|gen|util|oci|native|errdefs)(/|\\.ts$)";
const TTRPC = "^src/ttrpc/";
const AGENT = "^src/agent/";
const HYPERVISOR = "^src/hypervisor/";
const POD = "^src/pod/";
const SHIM = "^src/shim/";
const TRACE = "^src/trace/";

/** A rule: modules matching `from` may import, of src/, only what matches one of `may`. */
function layer(name, from, may, comment) {
  return {
    name,
    comment,
    severity: "error",
    from: { path: from },
    to: { path: "^src/", pathNot: may.join("|") },
  };
}

module.exports = {
  forbidden: [
    layer("foundation", FOUNDATION, [FOUNDATION], "protos, generated codecs, OCI types and small utilities import nothing of shimlab above them"),
    layer("ttrpc", TTRPC, [FOUNDATION, TTRPC], "the wire knows nothing of shims, pods or agents"),
    layer("agent", AGENT, [FOUNDATION, TTRPC, AGENT], "the kata API client and its transports sit on ttrpc alone"),
    layer("hypervisor", HYPERVISOR, [FOUNDATION, AGENT, HYPERVISOR], "a driver owns its VM or process and its cleanup; it knows no pod, shim, fault or image builder"),
    layer("pod", POD, [FOUNDATION, AGENT, HYPERVISOR, POD], "sandboxes and containers know no shim API, fault or harness"),
    layer("shim", SHIM, [FOUNDATION, TTRPC, AGENT, HYPERVISOR, POD, SHIM, TRACE], "the production shim carries no test machinery: no faults, harness or scenarios (tracing is loaded lazily, behind SHIMLAB_TRACE)"),
    layer(
      "trace",
      TRACE,
      [FOUNDATION, TTRPC, AGENT, HYPERVISOR, POD, SHIM, TRACE, "^src/mock-agent/", "^src/contract/(cite|rules|sections|types|ordering-check)(/|\\.ts$)"],
      "traces wrap interfaces of the layers below and cite the contract's rules",
    ),
    layer(
      "mock-agent",
      "^src/mock-agent/",
      [FOUNDATION, TTRPC, "^src/mock-agent/", "^src/faults/failpoint\\.ts$", "^src/trace/agent\\.ts$"],
      "the mock agent runs alone inside a VM: it shares ttrpc, the protos and small utilities only",
    ),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^src/gen/.*\\.d\\.ts$" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    // A lazy require() of a module is a dependency as much as an import is.
    moduleSystems: ["cjs", "es6"],
  },
};
