// trimWhenSettled: the idle daemon's and agent's malloc_trim, a few seconds
// after start-up and then now and then, never in the way.
import { describe, it, expect, vi, afterEach } from "vitest";
import { trimWhenSettled } from "../../src/util/trim";

afterEach(() => vi.useRealTimers());

describe("trimWhenSettled", () => {
  it("trims after each settling delay, then every interval, and a failing trim changes nothing", () => {
    vi.useFakeTimers();
    const at: number[] = [];
    const t0 = Date.now();
    trimWhenSettled(() => {
      at.push(Date.now() - t0);
      throw new Error("no addon");
    }, [4_000, 12_000], 60_000);
    vi.advanceTimersByTime(130_000);
    expect(at).toEqual([4_000, 12_000, 60_000, 120_000]);
  });

  it("trims after settling again when work begins again (a factory's agent taken into a pod), once per settling", () => {
    vi.useFakeTimers();
    const at: number[] = [];
    const t0 = Date.now();
    const t = trimWhenSettled(() => at.push(Date.now() - t0), [4_000, 12_000], 60_000);
    vi.advanceTimersByTime(20_000);
    t.again();
    vi.advanceTimersByTime(1_000);
    t.again(); // a second connection before the first settled: one settling, from the last
    vi.advanceTimersByTime(20_000);
    expect(at).toEqual([4_000, 12_000, 25_000, 33_000]);
  });

  it("keeps no process alive for its sake (its timers are unref'd)", () => {
    vi.useFakeTimers();
    const timers: { hasRef(): boolean }[] = [];
    const st = globalThis.setTimeout;
    const si = globalThis.setInterval;
    vi.spyOn(globalThis, "setTimeout").mockImplementation(((f: () => void, ms: number) => {
      const t = st(f, ms);
      timers.push(t);
      return t;
    }) as typeof setTimeout);
    vi.spyOn(globalThis, "setInterval").mockImplementation(((f: () => void, ms: number) => {
      const t = si(f, ms);
      timers.push(t);
      return t;
    }) as typeof setInterval);
    trimWhenSettled(() => undefined);
    expect(timers.length).toBe(3);
    expect(timers.every((t) => !t.hasRef())).toBe(true);
    vi.restoreAllMocks();
  });
});
