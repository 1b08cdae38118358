// shimlab's ttrpc lives in packages/ttrpc (@shimlab/ttrpc); this name stays for shimlab's own imports.
import { Server as TtrpcServer } from "@shimlab/ttrpc";
import type { ServiceDef, ServiceImpl } from "@shimlab/ttrpc";
import { ErrdefsError } from "../errdefs";
import { toGrpc } from "./errgrpc";

export { ServerConnection } from "@shimlab/ttrpc";
export type { Interceptor, ServerCall, ServerOptions } from "@shimlab/ttrpc";

type Handler = (req: unknown, ctx: unknown) => unknown;

/** An errdefs error leaving a handler as the status code of its kind; anything else is left for the server as before. */
function toWire(e: unknown): unknown {
  return e instanceof ErrdefsError ? toGrpc(e) : e;
}

/**
 * The ttrpc server whose handlers may throw errdefs errors: the kind becomes
 * its status code as the handler returns, so that interceptors (faults,
 * traces) and the gRPC transport see the status the peer will get.
 */
export class Server extends TtrpcServer {
  override register<S extends ServiceDef>(def: S, impl: ServiceImpl<S>): this {
    const mapped: Record<string, Handler> = {};
    for (const name of Object.keys(def.methods)) {
      const fn = (impl as Record<string, Handler>)[name];
      if (typeof fn !== "function") continue; // the base class names the missing handler
      mapped[name] = (req, ctx) => {
        let r: unknown;
        try {
          r = fn.call(impl, req, ctx);
        } catch (e) {
          throw toWire(e);
        }
        return r instanceof Promise ? r.catch((e) => Promise.reject(toWire(e))) : r;
      };
    }
    return super.register(def, mapped as ServiceImpl<S>);
  }
}
