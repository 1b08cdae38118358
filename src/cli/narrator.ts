// Step-by-step terminal output for people learning the shim lifecycle.
const tty = process.stdout.isTTY;
const c = (code: string, s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);

export const color = {
  dim: (s: string) => c("2", s),
  bold: (s: string) => c("1", s),
  green: (s: string) => c("32", s),
  red: (s: string) => c("31", s),
  yellow: (s: string) => c("33", s),
  cyan: (s: string) => c("36", s),
  magenta: (s: string) => c("35", s),
};

export class Narrator {
  private step = 0;
  private readonly t0 = performance.now();

  constructor(
    private readonly out: (s: string) => void = (s) => process.stdout.write(s + "\n"),
    /** Each section as it begins (the trace marks the diagram with it). */
    private readonly onSection?: (title: string) => void,
  ) {}

  private at(): string {
    return color.dim(`${((performance.now() - this.t0) / 1000).toFixed(3).padStart(7)}s`);
  }

  section(title: string, why?: string): void {
    this.step++;
    this.onSection?.(`${this.step}. ${title}`);
    this.out("");
    this.out(color.bold(`${this.step}. ${title}`));
    if (why) this.out(color.dim(`   ${why}`));
  }

  /** containerd (or its stand-in) does something. */
  containerd(what: string): void {
    this.out(`${this.at()} ${color.cyan("containerd")} → ${what}`);
  }

  shim(what: string): void {
    this.out(`${this.at()} ${color.magenta("shim")}       ${what}`);
  }

  event(topic: string, detail: string): void {
    this.out(`${this.at()} ${color.yellow("event")}      ${topic} ${color.dim(detail)}`);
  }

  note(what: string): void {
    this.out(`${this.at()}            ${color.dim(what)}`);
  }

  ok(what: string): void {
    this.out(`${this.at()} ${color.green("✓")}          ${what}`);
  }

  warn(what: string): void {
    this.out(`${this.at()} ${color.red("!")}          ${what}`);
  }

  raw(s: string): void {
    this.out(s);
  }
}
