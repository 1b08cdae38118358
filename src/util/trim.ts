// A daemon or agent allocates most of what it ever will while it starts and
// serves its pod's first calls, then idles for the pod's life. glibc keeps
// what start-up freed in its heaps (~0.8 MB of the shim's, ~0.5 MB of the
// agent's, measured with malloc_trim from gdb); giving it back a few seconds
// after start-up, after V8's memory reducer has run too, and then now and
// then, costs a fraction of a millisecond each time.

export interface Trims {
  /** Work began again (a factory's agent taken into a pod): trim after it settles, as after start-up. */
  again(): void;
}

export function trimWhenSettled(trim: () => unknown, afterMs: readonly number[] = [4_000, 12_000], everyMs = 60_000): Trims {
  const run = () => {
    try {
      trim();
    } catch {
      /* no addon: nothing given back */
    }
  };
  let pending: NodeJS.Timeout[] = [];
  const settle = () => {
    for (const t of pending) clearTimeout(t);
    pending = afterMs.map((ms) => setTimeout(run, ms).unref());
  };
  settle();
  setInterval(run, everyMs).unref();
  return { again: settle };
}
