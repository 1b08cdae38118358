// How the shim reaches an agent: one interface, one implementation per carrier.
import type { Duplex } from "node:stream";

export interface Transport {
  /** A URL-like description, e.g. "hvsock:///run/shimlab/x/agent.sock:1024". */
  readonly url: string;
  /** One connection attempt; rejects on failure or when the signal aborts. */
  connect(signal: AbortSignal): Promise<Duplex>;
}

export class TransportError extends Error {
  constructor(
    message: string,
    readonly code: string = "EUNKNOWN",
  ) {
    super(message);
    this.name = "TransportError";
  }
}

/** Rejects when the signal aborts, for wrapping connect steps. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  if (signal.aborted) {
    onAbort();
    return Promise.reject(new TransportError("dial aborted", "EABORTED"));
  }
  return new Promise<T>((resolve, reject) => {
    const handler = () => {
      onAbort();
      reject(new TransportError("dial aborted", "EABORTED"));
    };
    signal.addEventListener("abort", handler, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", handler);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", handler);
        reject(e);
      },
    );
  });
}
