// The VM (or host agent process) starting and stopping, and the agent's
// transport handed out tapped: a wrapper around the Hypervisor interface.
import type { Hypervisor, HypervisorKind, SandboxVm, StartOptions } from "../hypervisor/types";
import { ForwardingVm } from "../hypervisor/forwarding-vm";
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

class TracedVm extends ForwardingVm {
  constructor(
    vm: SandboxVm,
    private readonly rec: TraceRecorder,
  ) {
    super(
      vm,
      new TracedTransport(vm.agentTransport, rec),
      vm.exited.then((x) => {
        rec.record("vm.exit", { from: "vm", to: "shim", vmPid: vm.pid, code: x.code, signal: x.signal });
        return x;
      }),
    );
  }

  override async stop(): Promise<void> {
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
