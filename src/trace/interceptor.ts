// containerd→shim calls as the shim's ttrpc server sees them: each call and
// its reply (or error), with the ttrpc stream id.
import type { Interceptor } from "../ttrpc/server";
import { asRpcError, codeName } from "../ttrpc/status";
import { summarize, type TraceRecorder } from "./recorder";

export function traceInterceptor(rec: TraceRecorder, from: string, to: string): Interceptor {
  return async (call, next) => {
    const id = rec.nextId();
    const stream = call.ctx.streamId;
    rec.record("rpc.call", { id, from, to, service: call.service, method: call.method, stream, req: summarize(call.requestType, call.request) });
    try {
      const res = await next();
      rec.record("rpc.reply", { id, from: to, to: from, service: call.service, method: call.method, stream, ok: true, res: summarize(call.responseType, res ?? {}) });
      return res;
    } catch (e) {
      const err = asRpcError(e);
      rec.record("rpc.reply", { id, from: to, to: from, service: call.service, method: call.method, stream, ok: false, code: codeName[err.code] ?? err.code, error: err.message });
      throw e;
    }
  };
}
