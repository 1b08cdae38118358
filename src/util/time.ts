// Timestamps as containerd's shims send them.
import type { TimestampInit } from "../gen/google.protobuf";

/** Go's zero time.Time: what runc's shim sends for "has not exited". */
export const GO_ZERO_TIME: TimestampInit = { seconds: -62135596800, nanos: 0 };

export function timestampOf(date: Date): TimestampInit {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1e6 };
}

export function nowTimestamp(): TimestampInit {
  return timestampOf(new Date());
}
