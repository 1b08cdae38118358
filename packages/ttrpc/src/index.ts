// @shimlab/ttrpc: containerd's ttrpc (github.com/containerd/ttrpc) in
// TypeScript: frames, a client and a server over any stream (unix sockets,
// vsock, serial), status codes as containerd's errdefs map them, deadlines,
// and the protobuf wire runtime that ttrpc-gen-ts's generated code uses.
export * from "./channel";
export * from "./status";
export * from "./service";
export * from "./deadline";
export * from "./runtime";
export { Server, ServerConnection } from "./server";
export type { Interceptor, ServerCall, ServerOptions } from "./server";
export { Client } from "./client";
export type { ClientOptions } from "./client";
export { Request, Response, KeyValue } from "./gen/ttrpc";
export { Status } from "./gen/google.rpc";
export { Any } from "./gen/google.protobuf";
