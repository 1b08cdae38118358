// The kata agent API as the shim uses it: one long-lived ttrpc connection per
// sandbox, deadlines on ordinary calls and none on the calls that block by design.
import { EventEmitter } from "node:events";
import { Client } from "../ttrpc/client";
import { toNative } from "../ttrpc/errgrpc";
import type { CallOptions, ServiceClient } from "../ttrpc/service";
import { AgentService, Health } from "../gen/grpc";
import type { PortForward } from "../gen/shimlab.v1";
import { dialWithRetry, type DialOptions } from "./dial";
import type { Transport } from "./transport";
import { markUnusual } from "../util/code-cache";

/** Calls that wait for the guest (process exit, output, OOM) and must never time out (kata#5249). */
export const BLOCKING_METHODS = new Set(["WaitProcess", "ReadStdout", "ReadStderr", "WriteStdin", "GetOOMEvent"]);
/** shimlab.v1.PortForward's calls that wait on a peer's pace (its server's output, its reading): no deadline either. */
export const BLOCKING_PORT_FORWARD = new Set(["Read", "Write"]);

export interface AgentTimeouts {
  /** Kata: 30 s for Check. */
  checkMs: number;
  /** Kata's create_container_timeout. */
  createContainerMs: number;
  /** Everything else that is not blocking. */
  defaultMs: number;
}

export const DEFAULT_TIMEOUTS: AgentTimeouts = { checkMs: 30_000, createContainerMs: 60_000, defaultMs: 60_000 };

export type AgentApi = ServiceClient<typeof AgentService>;
export type HealthApi = ServiceClient<typeof Health>;
/** shimlab's own service (proto/shimlab/portforward.proto): only shimlab's guest agent serves it. */
export type PortForwardApi = ServiceClient<typeof PortForward>;

/** Events: "close" (err) when the connection to the agent is gone. */
export class AgentClient extends EventEmitter {
  readonly agent: AgentApi;
  readonly health: HealthApi;
  private forward: PortForwardApi | null = null;
  private readonly withTimeouts: <S extends typeof AgentService | typeof Health | typeof PortForward>(def: S) => ServiceClient<S>;

  private constructor(
    readonly rpc: Client,
    readonly transport: Transport,
    timeouts: AgentTimeouts,
  ) {
    super();
    const withTimeouts = (this.withTimeouts = <S extends typeof AgentService | typeof Health | typeof PortForward>(def: S): ServiceClient<S> => {
      const raw = rpc.service(def) as Record<string, (req: unknown, o?: CallOptions) => Promise<unknown>>;
      const out: Record<string, unknown> = {};
      const blocking = def.name === "shimlab.v1.PortForward" ? BLOCKING_PORT_FORWARD : BLOCKING_METHODS;
      for (const name of Object.keys(def.methods)) {
        const t = blocking.has(name)
          ? undefined
          : name === "Check"
            ? timeouts.checkMs
            : name === "CreateContainer"
              ? timeouts.createContainerMs
              : timeouts.defaultMs;
        // The agent's status as its errdefs kind: the pod tests kinds, and the shim's wire gives the same code back.
        out[name] = (req: unknown, o?: CallOptions) => raw[name](req, { timeoutMs: t, ...o }).catch((e) => Promise.reject(toNative(e)));
      }
      return out as ServiceClient<S>;
    });
    this.agent = withTimeouts(AgentService);
    this.health = withTimeouts(Health);
    rpc.on("close", (err) => this.emit("close", err));
  }

  /** shimlab.v1.PortForward, made by its first use (a VM pod's port relay): its codecs are not in a host pod's memory. */
  async portForward(): Promise<PortForwardApi> {
    markUnusual();
    return (this.forward ??= this.withTimeouts((await import("../gen/shimlab.v1")).PortForward));
  }

  /** Dials (with retries), then asks Health.Check, as Kata's shim does first. */
  static async connect(transport: Transport, opts: DialOptions & { timeouts?: Partial<AgentTimeouts> } = {}): Promise<AgentClient> {
    const stream = await dialWithRetry(transport, opts);
    const c = new AgentClient(new Client(stream), transport, { ...DEFAULT_TIMEOUTS, ...opts.timeouts });
    try {
      const res = await c.health.Check({ service: "" });
      if (res.status !== 1 /* SERVING */) throw new Error(`agent at ${transport.url} is not serving (status ${res.status})`);
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  get closed(): boolean {
    return this.rpc.isClosed;
  }

  close(): void {
    this.rpc.close();
  }
}
