// The daemon's interfaces, open to a second binary built on this shim: the
// failpoint shim (src/fp-shim) wraps them as tracing does, so that fault
// injection lives in its own binary, as containerd keeps its failpoint shim
// (containerd-shim-runc-fp-v1) apart from the runc shim. The production shim
// passes none and wraps nothing.
import type { Server } from "../ttrpc/server";
import type { EventSink } from "./publisher";
import type { Hypervisor } from "../hypervisor/types";
import type { Logger } from "../util/logger";

export interface DecorationContext {
  /** The bundle the daemon runs in (its cwd): a task's, or a sandbox's without config.json. */
  bundle: string;
  logger: Logger;
}

export interface DaemonDecorations {
  /** Called before any service is registered, after tracing's interceptor: interceptors go on here. */
  server?(server: Server, ctx: DecorationContext): void;
  /** Wraps the sink events leave by, outside tracing's (so a trace shows what really left). */
  events?(events: EventSink, ctx: DecorationContext): EventSink;
  /** Wraps each hypervisor the daemon's configuration makes, inside tracing's. */
  hypervisor?(hypervisor: Hypervisor, ctx: DecorationContext): Hypervisor;
}
