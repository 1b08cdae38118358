// A daemon or agent allocates most of what it ever will while it starts and
// serves its pod's first calls, then idles for the pod's life. glibc keeps
// what start-up freed in its heaps (~0.8 MB of the shim's, ~0.5 MB of the
// agent's, measured with malloc_trim from gdb); giving it back a few seconds
// after start-up, after V8's memory reducer has run too, and then now and
// then, costs a fraction of a millisecond each time.
export function trimWhenSettled(trim: () => unknown, afterMs: readonly number[] = [4_000, 12_000], everyMs = 60_000): void {
  const run = () => {
    try {
      trim();
    } catch {
      /* no addon: nothing given back */
    }
  };
  for (const ms of afterMs) setTimeout(run, ms).unref();
  setInterval(run, everyMs).unref();
}
