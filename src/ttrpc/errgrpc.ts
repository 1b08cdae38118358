// The wire's side of errdefs, as containerd's errgrpc: ToGRPC where a
// handler's error leaves for the peer, ToNative where a peer's status comes
// back into domain code. Each kind has one code and back, so a status that
// crosses the shim (the agent's, to containerd) keeps its code and message.
import { ErrdefsError, type Kind } from "../errdefs";
import { Code, RpcError, asRpcError } from "./status";

const CODE: Record<Kind, Code> = {
  Unknown: Code.Unknown,
  Canceled: Code.Canceled,
  InvalidArgument: Code.InvalidArgument,
  DeadlineExceeded: Code.DeadlineExceeded,
  NotFound: Code.NotFound,
  AlreadyExists: Code.AlreadyExists,
  PermissionDenied: Code.PermissionDenied,
  ResourceExhausted: Code.ResourceExhausted,
  FailedPrecondition: Code.FailedPrecondition,
  Aborted: Code.Aborted,
  OutOfRange: Code.OutOfRange,
  NotImplemented: Code.Unimplemented,
  Internal: Code.Internal,
  Unavailable: Code.Unavailable,
  DataLoss: Code.DataLoss,
  Unauthenticated: Code.Unauthenticated,
};

const KIND = new Map<number, Kind>(Object.entries(CODE).map(([k, c]) => [c, k as Kind]));

export function codeOfKind(kind: Kind): Code {
  return CODE[kind];
}

/** OK and codes gRPC does not define say nothing a caller can act on: Unknown, as errgrpc.ToNative. */
export function kindOfCode(code: number): Kind {
  return KIND.get(code) ?? "Unknown";
}

/** errgrpc.ToGRPC: an errdefs error as its status; anything else as the ttrpc server always answered it. */
export function toGrpc(e: unknown): RpcError {
  if (e instanceof ErrdefsError) return new RpcError(CODE[e.kind], e.message);
  return asRpcError(e);
}

/** errgrpc.ToNative: a status from a peer as its kind, the message unchanged; anything else as it is. */
export function toNative(e: unknown): unknown {
  if (!(e instanceof RpcError)) return e;
  return new ErrdefsError(kindOfCode(e.code), e.message, { cause: e });
}
