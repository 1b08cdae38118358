// The VM (or host agent process) starting and stopping, and the agent's
// transport handed out tapped: a wrapper around the Hypervisor interface.
import type { ShareOptions } from "../hypervisor/types";
import type { GuestNetwork, Hypervisor, HypervisorKind, LoopbackListener, SandboxVm, StartOptions, VmExit } from "../hypervisor/types";
import type { Transport } from "../agent/transport";
import type { StorageInit } from "../gen/grpc";
import type { TraceRecorder } from "./recorder";
import { TracedTransport } from "./agent-wire";
import { FileWatch } from "./files";

export class TracedHypervisor implements Hypervisor {
  constructor(
    private readonly inner: Hypervisor,
    private readonly rec: TraceRecorder,
  ) {
    if (inner.prestart) this.prestart = (o) => inner.prestart!(o);
  }

  get kind(): HypervisorKind {
    return this.inner.kind;
  }

  /** Present when the driver's is: a caller asks `prestart?.()` of whichever it holds. */
  readonly prestart?: (o: StartOptions) => void;

  release(): Promise<void> {
    return this.inner.release();
  }

  async start(o: StartOptions): Promise<SandboxVm> {
    const id = this.rec.nextId();
    this.rec.record("vm.start", { id, from: "shim", to: "vm", hypervisor: this.inner.kind, sandbox: o.sandboxId, runDir: o.runDir });
    // The sandbox's run directory (agent socket, VM record, agent state) as it fills; the watch never holds the shim up.
    new FileWatch(this.rec, [{ dir: o.runDir }]);
    let vm: SandboxVm;
    try {
      vm = await this.inner.start(o);
    } catch (e) {
      this.rec.record("vm.started", { id, from: "vm", to: "shim", ok: false, error: (e as Error).message });
      throw e;
    }
    this.rec.record("vm.started", { id, from: "vm", to: "shim", ok: true, vmPid: vm.pid, agent: vm.agentTransport.url, guest: vm.guest });
    return new TracedVm(vm, this.rec);
  }
}

class TracedVm implements SandboxVm {
  readonly agentTransport: Transport;
  readonly exited: Promise<VmExit>;

  constructor(
    private readonly vm: SandboxVm,
    private readonly rec: TraceRecorder,
  ) {
    this.agentTransport = new TracedTransport(vm.agentTransport, rec);
    this.exited = vm.exited.then((x) => {
      rec.record("vm.exit", { from: "vm", to: "shim", vmPid: vm.pid, code: x.code, signal: x.signal });
      return x;
    });
  }

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

  async stop(): Promise<void> {
    const id = this.rec.nextId();
    this.rec.record("vm.stop", { id, from: "shim", to: "vm", vmPid: this.vm.pid });
    try {
      await this.vm.stop();
      this.rec.record("vm.stopped", { id, from: "vm", to: "shim", ok: true, vmPid: this.vm.pid });
    } catch (e) {
      this.rec.record("vm.stopped", { id, from: "vm", to: "shim", ok: false, vmPid: this.vm.pid, error: (e as Error).message });
      throw e;
    }
  }
}
