// A SandboxVm that hands every call to another: the base of the wrappers that
// change one or two things about a VM (its transport, its exit, its stop), as
// the trace and the failpoint shim's link proxy do, so that a member added to
// SandboxVm is forwarded in one place.
import type { Transport } from "../agent/transport";
import type { StorageInit } from "../gen/grpc";
import type { GuestNetwork, HypervisorKind, LoopbackListener, SandboxVm, ShareOptions, VmExit } from "./types";

export class ForwardingVm implements SandboxVm {
  constructor(
    protected readonly vm: SandboxVm,
    readonly agentTransport: Transport = vm.agentTransport,
    readonly exited: Promise<VmExit> = vm.exited,
  ) {}

  get kind(): HypervisorKind {
    return this.vm.kind;
  }
  get pid(): number {
    return this.vm.pid;
  }
  get guest(): boolean {
    return this.vm.guest;
  }
  get network(): GuestNetwork | null {
    return this.vm.network;
  }
  openLoopback(): Promise<LoopbackListener | null> {
    return this.vm.openLoopback();
  }
  shareRootfs(containerId: string, hostPath: string, o?: ShareOptions): Promise<string> {
    return this.vm.shareRootfs(containerId, hostPath, o);
  }
  unshareRootfs(containerId: string): Promise<void> {
    return this.vm.unshareRootfs(containerId);
  }
  sandboxStorages(): StorageInit[] {
    return this.vm.sandboxStorages();
  }
  stop(): Promise<void> {
    return this.vm.stop();
  }
}
