// The Task API over gRPC, for containerd 2.x when the bootstrap result says
// `"protocol":"grpc"`. The services, handlers and interceptors (failpoints)
// stay those registered on the ttrpc Server; only the transport differs:
// grpc-js takes over the connections accepted on the socket `start` bound.
// Loaded only in that mode: grpc-js costs tens of milliseconds to require.
import type net from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { Server as TtrpcServer, ServerCall } from "../ttrpc/server";
import type { ServiceDef } from "../ttrpc/service";
import type { CallContext } from "../proto/message";
import { Code, RpcError } from "../ttrpc/status";
import { toGrpc } from "../ttrpc/errgrpc";

export interface GrpcTransport {
  readonly server: grpc.Server;
  /** Stops taking connections and ends the ones open, after a grace period for in-flight answers. */
  close(graceMs?: number): Promise<void>;
}

/** A grpc-js service definition whose (de)serializers are the generated codecs. */
export function grpcServiceDefinition(def: ServiceDef): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def.methods)) {
    out[name] = {
      path: `/${def.name}/${name}`,
      requestStream: false,
      responseStream: false,
      originalName: name,
      requestSerialize: (v: unknown) => m.requestType.encode(v as never),
      requestDeserialize: (b: Buffer) => m.requestType.decode(b),
      responseSerialize: (v: unknown) => m.responseType.encode((v ?? {}) as never),
      responseDeserialize: (b: Buffer) => m.responseType.decode(b),
    };
  }
  return out as grpc.ServiceDefinition;
}

export function serveGrpc(registry: TtrpcServer, listener: net.Server, services: ServiceDef[]): GrpcTransport {
  // gRPC's own keepalive pings would be noise to a local peer; containerd sets none.
  const server = new grpc.Server({ "grpc.max_receive_message_length": 16 << 20 });
  for (const def of services) {
    const impl: grpc.UntypedServiceImplementation = {};
    for (const name of Object.keys(def.methods)) impl[name] = unaryHandler(registry, def.name, name);
    server.addService(grpcServiceDefinition(def), impl);
  }
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  listener.on("connection", (sock) => injector.injectConnection(sock));
  return {
    server,
    close(graceMs = 500) {
      return new Promise((resolve) => {
        listener.close(() => {});
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
        injector.drain(graceMs);
      });
    },
  };
}

let streamSeq = 1;

function unaryHandler(registry: TtrpcServer, service: string, method: string): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const found = registry.lookup(service, method);
    if (found instanceof RpcError) return callback(toServiceError(found));
    const ac = new AbortController();
    call.on("cancelled", () => ac.abort(new RpcError(Code.Canceled, "context canceled")));
    const metadata = new Map<string, string[]>();
    for (const [k, v] of Object.entries(call.metadata.getMap())) {
      const list = metadata.get(k.toLowerCase()) ?? [];
      list.push(Buffer.isBuffer(v) ? v.toString() : String(v));
      metadata.set(k.toLowerCase(), list);
    }
    const d = call.getDeadline();
    const deadline = d instanceof Date ? d.getTime() : Number.isFinite(d) ? (d as number) : undefined;
    const ctx: CallContext = { metadata, signal: ac.signal, deadline, method: `${service}/${method}`, streamId: (streamSeq += 2) };
    const sc: ServerCall = { service, method, request: call.request, ctx, requestType: found.def.requestType, responseType: found.def.responseType };
    registry.dispatch(sc, found.handler).then(
      (value) => callback(null, value ?? {}),
      (err) => {
        if (!(err instanceof RpcError)) registry.emit("handlerError", sc, err);
        callback(toServiceError(toGrpc(err)));
      },
    );
  };
}

function toServiceError(e: RpcError): Partial<grpc.ServiceError> {
  return { code: e.code as grpc.status, details: e.message, message: e.message };
}
