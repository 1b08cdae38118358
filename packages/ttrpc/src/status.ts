// gRPC status codes and containerd's errdefs classes, in one place.
//
// A shim's errors travel as google.rpc.Status{code, message}. containerd's
// errdefs.FromGRPC turns the code back into its error class, so the code is
// what matters to containerd; the message follows errdefs' habit of ending in
// ": <class>" (e.g. "container not created: not found").

export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

export const codeName: Record<number, string> = Object.fromEntries(Object.entries(Code).map(([k, v]) => [v, k]));

/** errdefs' suffix for each class containerd recognises. */
const errdefsClass: Partial<Record<number, string>> = {
  [Code.NotFound]: "not found",
  [Code.AlreadyExists]: "already exists",
  [Code.InvalidArgument]: "invalid argument",
  [Code.FailedPrecondition]: "failed precondition",
  [Code.Unimplemented]: "not implemented",
  [Code.Unavailable]: "unavailable",
  [Code.DeadlineExceeded]: "context deadline exceeded",
  [Code.ResourceExhausted]: "resource exhausted",
};

/** An error with a gRPC code: what handlers throw and what clients reject with. */
export class RpcError extends Error {
  readonly code: number;
  readonly details: { typeUrl: string; value: Buffer }[];

  constructor(code: number, message: string, details: { typeUrl: string; value: Buffer }[] = []) {
    super(message);
    this.name = "RpcError";
    this.code = code;
    this.details = details;
  }

  get codeName(): string {
    return codeName[this.code] ?? `Code(${this.code})`;
  }

  override toString(): string {
    return `${this.codeName}: ${this.message}`;
  }
}

function errdefs(code: number, message: string): RpcError {
  const cls = errdefsClass[code];
  if (!cls || message === cls || message.endsWith(": " + cls)) return new RpcError(code, message || cls || "");
  return new RpcError(code, message ? `${message}: ${cls}` : cls);
}

export const notFound = (msg: string) => errdefs(Code.NotFound, msg);
export const alreadyExists = (msg: string) => errdefs(Code.AlreadyExists, msg);
export const invalidArgument = (msg: string) => errdefs(Code.InvalidArgument, msg);
export const failedPrecondition = (msg: string) => errdefs(Code.FailedPrecondition, msg);
export const unimplemented = (msg: string) => errdefs(Code.Unimplemented, msg);
export const unavailable = (msg: string) => errdefs(Code.Unavailable, msg);
export const deadlineExceeded = (msg: string) => new RpcError(Code.DeadlineExceeded, msg);
export const resourceExhausted = (msg: string) => new RpcError(Code.ResourceExhausted, msg);
export const internal = (msg: string) => new RpcError(Code.Internal, msg);
export const unknown = (msg: string) => new RpcError(Code.Unknown, msg);

/** Any thrown value as an RpcError: plain errors become Unknown, as errdefs.ToGRPC does. */
export function asRpcError(e: unknown): RpcError {
  if (e instanceof RpcError) return e;
  if (e instanceof Error) {
    const errno = (e as NodeJS.ErrnoException).code;
    if (errno === "ENOENT") return new RpcError(Code.NotFound, e.message);
    if (errno === "EEXIST") return new RpcError(Code.AlreadyExists, e.message);
    return new RpcError(Code.Unknown, e.message);
  }
  return new RpcError(Code.Unknown, String(e));
}

export function isCode(e: unknown, code: number): boolean {
  return e instanceof RpcError && e.code === code;
}
