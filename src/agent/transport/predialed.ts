// A connection dialled ahead: an agent booted (or taken from a factory) before
// containerd's Create arrives is dialled at once, so that the handshake, the
// first code either side runs for it, overlaps containerd's way to Create
// instead of following it. The first connect() takes that connection; any
// later one, or one after the early dial failed, dials anew.
import type { Duplex } from "node:stream";
import { abortable, type Transport } from "./transport";

export class PreDialedTransport implements Transport {
  private ahead: Promise<Duplex> | null;
  private readonly early = new AbortController();

  /** dialled: a connection made already (a parked daemon's, src/hypervisor/factory/held.ts), for the first connect. */
  constructor(
    readonly inner: Transport,
    dialled?: Duplex,
  ) {
    this.ahead = dialled ? Promise.resolve(dialled) : inner.connect(this.early.signal);
    this.ahead.catch(() => {});
  }

  get url(): string {
    return this.inner.url;
  }

  connect(signal: AbortSignal): Promise<Duplex> {
    const a = this.ahead;
    this.ahead = null;
    if (!a) return this.inner.connect(signal);
    // an early dial that failed (the agent not listening yet, say) is no answer: this one dials now
    const now = a.catch(() => this.inner.connect(signal));
    return abortable(now, signal, () => void now.then((s) => s.destroy(), () => {}));
  }

  /** Drops a connection dialled ahead that nobody took (the agent is going). */
  close(): void {
    const a = this.ahead;
    this.ahead = null;
    this.early.abort();
    a?.then((s) => s.destroy(), () => {});
  }
}
