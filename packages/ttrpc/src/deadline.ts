// A timer for a call's deadline. timeout_nano is an int64 of nanoseconds and
// Go's ttrpc takes any positive value as a context timeout, but Node's timers
// hold at most 2^31-1 ms (24.8 days): a longer delay fires after 1 ms, with a
// TimeoutOverflowWarning. A far deadline is therefore waited out in steps.

export const TIMER_MAX_MS = 2 ** 31 - 1;

export interface DeadlineTimer {
  clear(): void;
}

/** Calls fn once ms have passed (ms may be far beyond Node's timer limit). */
export function afterDeadline(ms: number, fn: () => void): DeadlineTimer {
  let timer: NodeJS.Timeout;
  const arm = (left: number) => {
    timer = left > TIMER_MAX_MS ? setTimeout(() => arm(left - TIMER_MAX_MS), TIMER_MAX_MS) : setTimeout(fn, Math.max(0, left));
  };
  arm(ms);
  return { clear: () => clearTimeout(timer) };
}
