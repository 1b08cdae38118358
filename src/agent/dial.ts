// Dialling an agent that may still be booting: retry within a deadline, each
// attempt bounded, as Kata's dialers do (and never marking the agent dead on
// the first failure, kata#4722).
import type { Duplex } from "node:stream";
import { TransportError, type Transport } from "./transport";

export interface DialOptions {
  /** Total budget; Kata ships 45 s. */
  timeoutMs?: number;
  /** Bound on one attempt (the hybrid vsock handshake has its own). */
  attemptTimeoutMs?: number;
  /** Pause between attempts, doubling up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  signal?: AbortSignal;
  onAttempt?: (n: number, err?: Error) => void;
}

export async function dialWithRetry(t: Transport, opts: DialOptions = {}): Promise<Duplex> {
  const timeoutMs = opts.timeoutMs ?? 45_000;
  const attemptTimeoutMs = opts.attemptTimeoutMs ?? 5_000;
  let backoff = opts.backoffMs ?? 10;
  const maxBackoff = opts.maxBackoffMs ?? 500;
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (let n = 1; ; n++) {
    if (opts.signal?.aborted) throw new TransportError(`dial ${t.url}: aborted`, "EABORTED");
    const left = deadline - Date.now();
    if (left <= 0) break;
    const ac = new AbortController();
    const onOuter = () => ac.abort();
    opts.signal?.addEventListener("abort", onOuter, { once: true });
    const timer = setTimeout(() => ac.abort(), Math.min(attemptTimeoutMs, left));
    try {
      const s = await t.connect(ac.signal);
      opts.onAttempt?.(n);
      return s;
    } catch (e) {
      last = e as Error;
      opts.onAttempt?.(n, last);
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onOuter);
    }
    const wait = Math.min(backoff, Math.max(0, deadline - Date.now()));
    if (wait <= 0) break;
    await new Promise((r) => setTimeout(r, wait));
    backoff = Math.min(backoff * 2, maxBackoff);
  }
  throw new TransportError(`dial ${t.url}: no agent within ${timeoutMs} ms${last ? `: ${last.message}` : ""}`, "ETIMEDOUT");
}
