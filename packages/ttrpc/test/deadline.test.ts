// afterDeadline (src/ttrpc/deadline.ts) waits out delays longer than Node's
// timers hold (2^31-1 ms) in steps, instead of firing after 1 ms.
import { describe, it, expect, afterEach, vi } from "vitest";
import { afterDeadline, TIMER_MAX_MS } from "../src/deadline";

afterEach(() => {
  vi.useRealTimers();
});

describe("afterDeadline", () => {
  it("fires a far deadline once, at its time, not after 1 ms", () => {
    vi.useFakeTimers();
    const fired: number[] = [];
    const t0 = Date.now();
    afterDeadline(3 * TIMER_MAX_MS + 5, () => fired.push(Date.now() - t0));
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(3 * TIMER_MAX_MS + 3);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([3 * TIMER_MAX_MS + 5]);
    vi.advanceTimersByTime(10 * TIMER_MAX_MS);
    expect(fired).toHaveLength(1);
  });

  it("fires a near deadline as setTimeout does, and never once cleared, whatever step it is in", () => {
    vi.useFakeTimers();
    let near = 0;
    afterDeadline(30, () => near++);
    vi.advanceTimersByTime(30);
    expect(near).toBe(1);
    let far = 0;
    const t = afterDeadline(2 * TIMER_MAX_MS + 10, () => far++);
    vi.advanceTimersByTime(TIMER_MAX_MS + 1);
    t.clear();
    vi.advanceTimersByTime(3 * TIMER_MAX_MS);
    expect(far).toBe(0);
  });
});
