// One line per trace record as `shimlab sniff` prints it live: time since
// the first line, who talks to whom, the method or event with its key fields,
// the latency on replies; a frame it could not decode as raw hex.
import type { TraceRecord } from "../trace/recorder";
import { brief } from "../trace/model";

const s = (v: unknown) => (v === undefined || v === null ? "" : String(v));

export class LinePrinter {
  private t0: number | null = null;
  private readonly opened = new Map<string, number>();

  format(r: TraceRecord): string | null {
    if (this.t0 === null) this.t0 = r.t;
    const at = `+${((r.t - this.t0) / 1000).toFixed(1).padStart(8)}ms`;
    const arrow = `${s(r.from)} → ${s(r.to)}`;
    const took = (): string => {
      const t = this.opened.get(s(r.id));
      this.opened.delete(s(r.id));
      return t === undefined ? "" : ` (${((r.t - t) / 1000).toFixed(2)} ms)`;
    };
    switch (r.kind) {
      case "rpc.call":
        this.opened.set(s(r.id), r.t);
        return `${at}  ${arrow}  ${s(r.method)}(${brief(r.req)}) stream ${s(r.stream)}${r.payloadHex !== undefined ? ` payload ${s(r.payloadHex)}` : ""}`;
      case "rpc.reply":
        return r.ok ? `${at}  ${arrow}  ${s(r.method)} ok ${brief(r.res)}${took()}`.replace(/ +\(/, " (") : `${at}  ${arrow}  ${s(r.method)} error ${s(r.code)}: ${s(r.error)}${took()}`;
      case "event":
        return `${at}  ${arrow}  event ${s(r.topic)} ${brief(r.event)}`.trimEnd();
      case "exec.call":
        this.opened.set(s(r.id), r.t);
        return `${at}  containerd runs ${s(r.shim) || "the shim"} ${s(r.action)} (id ${s(r.task)})`;
      case "exec.reply":
        return `${at}  ${s(r.action)} exits ${s(r.code)}${r.address ? `: ${s(r.address)}` : ""}${r.error ? `: ${s(r.error)}` : ""}${took()}`;
      case "wire.raw":
        return `${at}  ${arrow}  RAW ${s(r.reason)}${r.stream !== undefined ? ` stream ${s(r.stream)} type ${s(r.type)} length ${s(r.length)}` : ""}${r.hex ? ` ${s(r.hex)}` : ""}`;
      case "note":
        return `${at}  · ${s(r.text)}`;
      default:
        return null;
    }
  }
}
