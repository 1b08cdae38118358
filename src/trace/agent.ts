// Tracing inside the mock agent: the processes it runs (spawn, start, signal,
// exit), by wrapping its Runtime interface. Loaded only when SHIMLAB_TRACE is set.
import type { ContainerConfig, Runtime, RuntimeProcess } from "../mock-agent/runtime/types";
import type { OciProcess } from "../oci/spec";
import { processTracer, type TraceRecorder } from "./recorder";

export function traceAgentProcess(): TraceRecorder | null {
  const rec = processTracer("agent");
  if (!rec) return null;
  rec.record("proc.start", { lane: "agent", action: "agent", argv: process.argv.slice(2) });
  process.once("exit", (code) => rec.record("proc.exit", { lane: "agent", action: "agent", code }));
  return rec;
}

export function traceRuntime(inner: Runtime): Runtime {
  const rec = processTracer("agent");
  return rec ? new TracedRuntime(inner, rec) : inner;
}

class TracedRuntime implements Runtime {
  /** Init pid per container, and the lane of each exec's process. */
  private readonly inits = new Map<string, number>();
  private readonly execs = new WeakMap<RuntimeProcess, string>();
  /** A host runtime only spawns at start: the args come from create. */
  private readonly argv = new Map<string, string[] | undefined>();

  constructor(
    private readonly inner: Runtime,
    private readonly rec: TraceRecorder,
  ) {}

  get name(): Runtime["name"] {
    return this.inner.name;
  }
  get isolated(): boolean {
    return this.inner.isolated;
  }

  private watch(container: string, exec: string, rp: RuntimeProcess, phase: string, argv?: string[]): RuntimeProcess {
    const proc = exec ? `${container}/${exec}` : container;
    if (exec) this.execs.set(rp, proc);
    else this.inits.set(container, rp.pid);
    this.rec.record("process.spawn", { from: "agent", to: proc, proc, container, exec, procPid: rp.pid, phase, runtime: this.inner.name, argv });
    rp.exit.then((status) => this.rec.record("process.exit", { from: proc, to: "agent", proc, container, exec, procPid: rp.pid, status }));
    return rp;
  }

  async create(c: ContainerConfig): Promise<RuntimeProcess | null> {
    const rp = await this.inner.create(c);
    if (rp) this.watch(c.id, "", rp, "create", c.spec.process?.args);
    else this.argv.set(c.id, c.spec.process?.args);
    return rp;
  }

  async start(id: string): Promise<RuntimeProcess | null> {
    const rp = await this.inner.start(id);
    if (rp) this.watch(id, "", rp, "start", this.argv.get(id));
    else this.rec.record("process.start", { from: "agent", to: id, proc: id, container: id, exec: "", procPid: this.inits.get(id) ?? 0, runtime: this.inner.name });
    return rp;
  }

  async exec(id: string, execId: string, p: OciProcess): Promise<RuntimeProcess> {
    return this.watch(id, execId, await this.inner.exec(id, execId, p), "exec", p.args);
  }

  signal(id: string, target: RuntimeProcess | "all", sig: number): Promise<void> {
    const all = target === "all";
    const proc = all ? id : (this.execs.get(target) ?? id);
    this.rec.record("process.signal", { from: "agent", to: proc, proc, container: id, signal: sig, all, procPid: all ? 0 : target.pid });
    return this.inner.signal(id, target, sig);
  }

  pause(id: string) {
    return this.inner.pause(id);
  }
  resume(id: string) {
    return this.inner.resume(id);
  }
  stats(id: string) {
    return this.inner.stats(id);
  }
  update(id: string, r: Parameters<Runtime["update"]>[1]) {
    return this.inner.update(id, r);
  }
  oomKills(id: string): number {
    return this.inner.oomKills(id);
  }
  destroy(id: string) {
    return this.inner.destroy(id);
  }
  pids(id: string) {
    return this.inner.pids(id);
  }
  removeCgroup(cgroupPath: string): void {
    this.inner.removeCgroup(cgroupPath);
  }
}
