// containerd's error kinds (github.com/containerd/errdefs), for the code below
// the wire: pod, agent, hypervisor, OCI and the shim's own checks throw these
// and test them by kind. Only the ttrpc/gRPC boundary knows status codes
// (src/ttrpc/errgrpc.ts), as containerd keeps errdefs apart from errgrpc.
// This module imports nothing, so that every layer (and the mock agent) may.

export type Kind =
  | "Unknown"
  | "Canceled"
  | "InvalidArgument"
  | "DeadlineExceeded"
  | "NotFound"
  | "AlreadyExists"
  | "PermissionDenied"
  | "ResourceExhausted"
  | "FailedPrecondition"
  | "Aborted"
  | "OutOfRange"
  | "NotImplemented"
  | "Internal"
  | "Unavailable"
  | "DataLoss"
  | "Unauthenticated";

/**
 * The ": <class>" ending errdefs' wrapped errors print, for the kinds whose
 * messages have always carried it on shimlab's wire ("container x: not found");
 * the other kinds keep their message as given, as they always have.
 */
const SUFFIX: Partial<Record<Kind, string>> = {
  NotFound: "not found",
  AlreadyExists: "already exists",
  InvalidArgument: "invalid argument",
  FailedPrecondition: "failed precondition",
  NotImplemented: "not implemented",
  Unavailable: "unavailable",
};

export interface ErrdefsOptions {
  cause?: unknown;
}

/** An error of one errdefs kind; `cause` keeps what it wraps (an agent's status, an errno). */
export class ErrdefsError extends Error {
  constructor(
    readonly kind: Kind,
    message: string,
    options?: ErrdefsOptions,
  ) {
    super(message, options);
    this.name = "ErrdefsError";
  }

  override toString(): string {
    return `${this.kind}: ${this.message}`;
  }
}

function withSuffix(kind: Kind, message: string): string {
  const cls = SUFFIX[kind];
  if (!cls || message === cls || message.endsWith(": " + cls)) return message || cls || "";
  return message ? `${message}: ${cls}` : cls;
}

/** An error of kind, its message ending in the kind's class where errdefs' messages do. */
export function errorOf(kind: Kind, message: string, options?: ErrdefsOptions): ErrdefsError {
  return new ErrdefsError(kind, withSuffix(kind, message), options);
}

export const unknown = (msg: string, o?: ErrdefsOptions) => errorOf("Unknown", msg, o);
export const canceled = (msg: string, o?: ErrdefsOptions) => errorOf("Canceled", msg, o);
export const invalidArgument = (msg: string, o?: ErrdefsOptions) => errorOf("InvalidArgument", msg, o);
export const deadlineExceeded = (msg: string, o?: ErrdefsOptions) => errorOf("DeadlineExceeded", msg, o);
export const notFound = (msg: string, o?: ErrdefsOptions) => errorOf("NotFound", msg, o);
export const alreadyExists = (msg: string, o?: ErrdefsOptions) => errorOf("AlreadyExists", msg, o);
export const permissionDenied = (msg: string, o?: ErrdefsOptions) => errorOf("PermissionDenied", msg, o);
export const resourceExhausted = (msg: string, o?: ErrdefsOptions) => errorOf("ResourceExhausted", msg, o);
export const failedPrecondition = (msg: string, o?: ErrdefsOptions) => errorOf("FailedPrecondition", msg, o);
export const aborted = (msg: string, o?: ErrdefsOptions) => errorOf("Aborted", msg, o);
export const outOfRange = (msg: string, o?: ErrdefsOptions) => errorOf("OutOfRange", msg, o);
export const notImplemented = (msg: string, o?: ErrdefsOptions) => errorOf("NotImplemented", msg, o);
export const internal = (msg: string, o?: ErrdefsOptions) => errorOf("Internal", msg, o);
export const unavailable = (msg: string, o?: ErrdefsOptions) => errorOf("Unavailable", msg, o);
export const dataLoss = (msg: string, o?: ErrdefsOptions) => errorOf("DataLoss", msg, o);
export const unauthenticated = (msg: string, o?: ErrdefsOptions) => errorOf("Unauthenticated", msg, o);

/** The kind of any thrown value: anything not from this module is Unknown, as errdefs says of a plain error. */
export function kindOf(e: unknown): Kind {
  return e instanceof ErrdefsError ? e.kind : "Unknown";
}

export function isKind(e: unknown, kind: Kind): boolean {
  return e instanceof ErrdefsError && e.kind === kind;
}

export const isCanceled = (e: unknown) => isKind(e, "Canceled");
export const isInvalidArgument = (e: unknown) => isKind(e, "InvalidArgument");
export const isDeadlineExceeded = (e: unknown) => isKind(e, "DeadlineExceeded");
export const isNotFound = (e: unknown) => isKind(e, "NotFound");
export const isAlreadyExists = (e: unknown) => isKind(e, "AlreadyExists");
export const isPermissionDenied = (e: unknown) => isKind(e, "PermissionDenied");
export const isResourceExhausted = (e: unknown) => isKind(e, "ResourceExhausted");
export const isFailedPrecondition = (e: unknown) => isKind(e, "FailedPrecondition");
export const isAborted = (e: unknown) => isKind(e, "Aborted");
export const isOutOfRange = (e: unknown) => isKind(e, "OutOfRange");
export const isNotImplemented = (e: unknown) => isKind(e, "NotImplemented");
export const isInternal = (e: unknown) => isKind(e, "Internal");
export const isUnavailable = (e: unknown) => isKind(e, "Unavailable");
export const isDataLoss = (e: unknown) => isKind(e, "DataLoss");
export const isUnauthenticated = (e: unknown) => isKind(e, "Unauthenticated");
/** Only an ErrdefsError of kind Unknown: a plain error is not "known to be Unknown", as errdefs.IsUnknown. */
export const isUnknown = (e: unknown) => isKind(e, "Unknown");

/**
 * `msg: <cause's message>`, of the cause's kind (Unknown for a plain error),
 * as Go's fmt.Errorf("msg: %w", err) keeps errors.Is working.
 */
export function wrap(cause: unknown, msg: string): ErrdefsError {
  const inner = cause instanceof Error ? cause.message : String(cause);
  return new ErrdefsError(kindOf(cause), `${msg}: ${inner}`, { cause });
}
