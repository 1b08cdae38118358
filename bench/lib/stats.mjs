// Order statistics for benchmark samples (nearest-rank percentiles).
export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summary(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, min: s[0], median: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] };
}

export const round = (x, d = 2) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : null);
