// shimlab's ttrpc: a TypeScript implementation of containerd/ttrpc, usable on its own.
export * from "./channel";
export * from "./status";
export * from "./service";
export * from "./deadline";
export { Server, ServerConnection } from "./server";
export type { Interceptor, ServerCall, ServerOptions } from "./server";
export { Client } from "./client";
export type { ClientOptions } from "./client";
export type { CallContext, MessageCodec } from "../proto/message";
