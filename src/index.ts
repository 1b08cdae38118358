// shimlab as a library: what a test author needs to test a shim from their
// own code. Top level: a private containerd and a containerd stand-in that
// drives any shim binary; namespaces for the larger pieces (conformance,
// scenarios, trace, CRI, peers). shimlab/vitest adds fixtures on top.
// Nothing here is loaded by the shim's own binaries.
export { Containerd, SHIM_BINARY, type ContainerdOptions } from "./harness/containerd";
export { ContainerdEmulator, type EmulatorOptions } from "./harness/emulator";
export { ShimRunner, ShimTask, ShimStartError, runCommand, type ShimBinaryOptions, type Containerd2Options, type CommandResult } from "./harness/shim-runner";
export { EventsServer, type RecordedEvent } from "./harness/events-server";
export { defaultSpec, createBundle, type SpecOptions } from "./harness/bundle";
export { clientStdio, type ClientStdio } from "./harness/fifo";
export { buildBusyboxRootfs, findBusybox } from "./harness/rootfs";
export { expectNoLeaks, expectNoProcessesMentioning, shimlabProcesses, listProcesses, runProcesses, mountsUnder, type ProcInfo, type RunScope } from "./harness/leaks";
export type { OciSpec } from "./oci/spec";
export * as conformance from "./api/conformance";
export * as scenarios from "./scenarios";
export * as trace from "./trace";
export * as cri from "./api/cri";
export * as peers from "./api/peers";
