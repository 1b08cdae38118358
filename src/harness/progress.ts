// Progress of a long step (a kernel or image build, a critest run), always on stderr: stdout stays
// for results and JSON that callers pipe on.
//
// On a terminal the latest status rewrites one line (carriage return), as people watching expect.
// Anywhere else (a CI log, a pipe, a file) a carriage-return animation turns into one huge line or
// debris, yet a log of a 5-minute step with nothing in it looks hung: there each status is a plain
// line of its own, at most one per `intervalMs`, and lines (steps) are always printed.
// A heartbeat says the step is still going when nothing was said for a while (a tar, a VM boot).

export interface ProgressOptions {
  /** Where it goes; stderr by default. */
  stream?: { write(s: string): unknown; isTTY?: boolean };
  /** Rewrite one status line (default: when the stream is a terminal). */
  tty?: boolean;
  /** Least time between two status lines when not on a terminal (default 30 s). */
  intervalMs?: number;
  /** After this long with nothing said, print that the last step still runs (default 60 s; 0: never). */
  heartbeatMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

export class Progress {
  private readonly out: NonNullable<ProgressOptions["stream"]>;
  private readonly tty: boolean;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly started: number;
  private lastStatusAt = -Infinity;
  private lastSaidAt: number;
  private lastStep = "";
  private statusShown = false;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly label: string,
    o: ProgressOptions = {},
  ) {
    this.out = o.stream ?? process.stderr;
    this.tty = o.tty ?? this.out.isTTY === true;
    this.intervalMs = o.intervalMs ?? 30_000;
    this.now = o.now ?? Date.now;
    this.started = this.lastSaidAt = this.now();
    const hb = o.heartbeatMs ?? 60_000;
    if (hb > 0) {
      this.timer = setInterval(() => {
        if (this.now() - this.lastSaidAt >= hb) this.status(`${this.lastStep ? `still ${this.lastStep}` : "running"} (${this.elapsed()} s)`);
      }, Math.min(hb, 5_000));
      this.timer.unref();
    }
  }

  /** Seconds since the start. */
  elapsed(): number {
    return Math.round((this.now() - this.started) / 1000);
  }

  /** A step: always its own line. */
  line(msg: string): void {
    this.clearStatus();
    this.out.write(`${this.label}: ${msg}\n`);
    this.lastStep = msg;
    this.lastSaidAt = this.now();
  }

  /** A count or percentage: rewritten in place on a terminal, else a line at most once per interval. */
  status(msg: string): void {
    const t = this.now();
    if (this.tty) {
      this.out.write(`\r\x1b[K${this.label}: ${msg}`);
      this.statusShown = true;
    } else {
      if (t - this.lastStatusAt < this.intervalMs) return;
      this.out.write(`${this.label}: ${msg}\n`);
    }
    this.lastStatusAt = t;
    this.lastSaidAt = t;
  }

  /** Ends the status line and stops the heartbeat. */
  done(msg?: string): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (msg) this.line(msg);
    else this.clearStatus();
  }

  private clearStatus(): void {
    if (this.statusShown) this.out.write("\r\x1b[K");
    this.statusShown = false;
  }
}

/**
 * Counts specs in ginkgo's default output as it streams (critest): "Will run N of M specs", then a
 * "•" per spec that ran (its outcome follows it when not a plain pass) and an "S" per skipped one
 * (left out by -ginkgo.skip or skipped at run time), so ran + skipped reaches M at the end.
 */
export class GinkgoCounter {
  /** Every spec of the suite (M), each of which ends as a "•" or an "S". */
  total?: number;
  ran = 0;
  failed = 0;
  skipped = 0;
  private partial = "";

  feed(chunk: string): void {
    const text = this.partial + chunk;
    const lines = text.split("\n");
    this.partial = lines.pop() ?? "";
    for (const l of lines) this.take(l);
  }

  private take(l: string): void {
    const will = /^Will run (\d+) of (\d+) specs/.exec(l);
    if (will) this.total = Number(will[2]);
    // A spec's mark opens its line: dots of passes run together ("•••"), a failure is "• [FAILED]".
    const marks = /^([•S]+)(?=\s|$)/.exec(l);
    if (marks) {
      for (const c of marks[1]) c === "•" ? this.ran++ : this.skipped++;
      if (/^•\s*\[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED)\]/.test(l)) this.failed++;
    }
  }

  summary(): string {
    return `${this.ran + this.skipped}${this.total !== undefined ? `/${this.total}` : ""} specs: ${this.ran} ran, ${this.failed} failed, ${this.skipped} skipped`;
  }
}
