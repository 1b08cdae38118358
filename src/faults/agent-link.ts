// Wire faults between the shim and its agent: when SHIMLAB_AGENT_LINK_FAULTS
// holds a JSON list of toxics, the failpoint shim (src/fp-shim) reaches the
// host agent's socket through a FaultProxy (the hybrid-vsock handshake passes
// through it like any bytes), e.g.
// [{"stream":"upstream","spec":{"type":"timeout","timeout":0}}] makes the
// agent's CONNECT reply never come (kata#12671). It wraps the Hypervisor
// interface, so the host agent's driver knows nothing of it.
import { FaultProxy } from "./proxy";
import { validateToxic, type Toxic } from "./toxics";
import { HybridVsockTransport, PreDialedTransport } from "../agent/transport";
import type { Transport } from "../agent/transport";
import type { OciSpec } from "../oci/spec";
import type { Hypervisor, SandboxVm, StartOptions } from "../hypervisor/types";
import { ForwardingVm } from "../hypervisor/forwarding-vm";
import { socketIn } from "../hypervisor/rundir";
import type { Logger } from "../util/logger";

export const AGENT_LINK_FAULTS_ENV = "SHIMLAB_AGENT_LINK_FAULTS";

export function parseLinkToxics(json: string, what = AGENT_LINK_FAULTS_ENV): Toxic[] {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    throw new Error(`${what}: not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(v)) throw new Error(`${what}: want a JSON list of toxics`);
  v.forEach((t, i) => {
    try {
      validateToxic(t as Toxic);
    } catch (e) {
      throw new Error(`${what}[${i}]: ${(e as Error).message}`);
    }
  });
  return v as Toxic[];
}

/** Starts a proxy on `listen` in front of the agent's socket; null when no faults are configured. */
export async function interposeAgentLink(env: NodeJS.ProcessEnv, agentSocket: string, listen: string): Promise<FaultProxy | null> {
  const raw = env[AGENT_LINK_FAULTS_ENV];
  if (!raw) return null;
  const proxy = new FaultProxy({ listen, upstream: agentSocket, toxics: parseLinkToxics(raw) });
  await proxy.start();
  return proxy;
}

/**
 * A hypervisor whose host agent is dialled through a FaultProxy holding the
 * toxics of the agent's environment. Only the host agent (hypervisor "none")
 * is reached by a unix socket with the handshake in the stream; a VM's agent
 * is handed out untouched.
 */
export class LinkFaultHypervisor implements Hypervisor {
  constructor(
    private readonly inner: Hypervisor,
    private readonly logger: Logger,
  ) {}

  get kind(): "none" | "qemu" {
    return this.inner.kind;
  }

  admit(spec: OciSpec): void {
    this.inner.admit?.(spec);
  }

  /** Present when the driver's is: the daemon asks `prestart?.()` of whichever it holds. */
  get prestart(): ((o: StartOptions) => void) | undefined {
    const p = this.inner.prestart;
    return p ? (o) => p.call(this.inner, o) : undefined;
  }

  release(): Promise<void> {
    return this.inner.release();
  }

  async start(o: StartOptions): Promise<SandboxVm> {
    const vm = await this.inner.start(o);
    // an agent up before Create was dialled ahead (predialed.ts): that connection would pass by the proxy
    const ahead = vm.agentTransport instanceof PreDialedTransport ? vm.agentTransport : null;
    const t = ahead ? ahead.inner : vm.agentTransport;
    if (vm.kind !== "none" || !(t instanceof HybridVsockTransport)) return vm;
    let proxy: FaultProxy | null;
    try {
      proxy = await interposeAgentLink(o.env ?? process.env, t.udsPath, socketIn(o.runDir, "agent-link.sock"));
    } catch (e) {
      // a malformed list fails the sandbox's start, as a bad config would, and leaves no agent behind
      await vm.stop().catch(() => {});
      throw e;
    }
    if (!proxy) return vm;
    ahead?.close();
    this.logger.warn("agent link faults installed", { proxy: proxy.o.listen });
    return new ProxiedVm(vm, new HybridVsockTransport(proxy.o.listen, t.port, t.handshakeTimeoutMs), proxy);
  }
}

/** The host agent with its transport through the proxy; the proxy goes first when it stops. */
class ProxiedVm extends ForwardingVm {
  constructor(
    vm: SandboxVm,
    agentTransport: Transport,
    private readonly proxy: FaultProxy,
  ) {
    super(vm, agentTransport);
  }

  override async stop(): Promise<void> {
    await this.proxy.stop().catch(() => {});
    await this.vm.stop();
  }
}
