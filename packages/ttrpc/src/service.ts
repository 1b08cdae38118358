// Service definitions as the generator emits them, and the types derived from them.
import type { CallContext, MessageCodec } from "./message";

export interface MethodDef {
  readonly name: string;
  readonly requestType: MessageCodec<any, any>;
  readonly responseType: MessageCodec<any, any>;
}

export interface ServiceDef {
  readonly name: string;
  readonly methods: Readonly<Record<string, MethodDef>>;
}

type ReqOf<M> = M extends { requestType: MessageCodec<infer T, any> } ? T : never;
type ReqInitOf<M> = M extends { requestType: MessageCodec<any, infer I> } ? I : never;
type ResOf<M> = M extends { responseType: MessageCodec<infer T, any> } ? T : never;
type ResInitOf<M> = M extends { responseType: MessageCodec<any, infer I> } ? I : never;

export type Handler<M> = (req: ReqOf<M>, ctx: CallContext) => Promise<ResInitOf<M>> | ResInitOf<M>;

/** A server-side implementation: one handler per method. */
export type ServiceImpl<S extends ServiceDef> = { [K in keyof S["methods"]]: Handler<S["methods"][K]> };

export interface CallOptions {
  /** Sent as timeout_nano and enforced locally; none means the call may block forever. */
  timeoutMs?: number;
  metadata?: Record<string, string | string[]>;
  signal?: AbortSignal;
}

/** A client-side stub: one async function per method. */
export type ServiceClient<S extends ServiceDef> = {
  [K in keyof S["methods"]]: (req: ReqInitOf<S["methods"][K]>, opts?: CallOptions) => Promise<ResOf<S["methods"][K]>>;
};
