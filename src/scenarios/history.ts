// A Jepsen-style operation history: every operation is an invoke followed by
// exactly one completion — ok (it happened), fail (it did not) or info (the
// client gave up and cannot know) — with times since the run began.
import { RpcError } from "../ttrpc/status";
import type { HistoryOp, Outcome } from "./types";

export class History {
  readonly ops: HistoryOp[] = [];

  constructor(private readonly now: () => number) {}

  invoke(process: string, f: string, fields: Partial<HistoryOp> = {}): HistoryOp {
    const op: HistoryOp = { index: this.ops.length, process, type: "invoke", f, time: this.now(), ...fields };
    this.ops.push(op);
    return op;
  }

  complete(inv: HistoryOp, type: Outcome, fields: Partial<HistoryOp> = {}): HistoryOp {
    const op: HistoryOp = { ...inv, index: this.ops.length, type, time: this.now(), value: undefined, error: undefined, ...fields };
    this.ops.push(op);
    return op;
  }

  /** The completion of an invoke, if any. */
  completion(inv: HistoryOp): HistoryOp | undefined {
    for (let i = inv.index + 1; i < this.ops.length; i++) {
      const o = this.ops[i];
      if (o.type !== "invoke" && o.process === inv.process && o.f === inv.f && o.step === inv.step && o.container === inv.container && o.exec_id === inv.exec_id) return o;
    }
    return undefined;
  }

  /** Pairs of invoke and completion (undefined while pending). */
  pairs(): { inv: HistoryOp; done?: HistoryOp }[] {
    const open = new Map<string, HistoryOp[]>();
    const out: { inv: HistoryOp; done?: HistoryOp }[] = [];
    const key = (o: HistoryOp) => `${o.process}\0${o.f}\0${o.step}\0${o.container}\0${o.exec_id}`;
    for (const o of this.ops) {
      if (o.type === "invoke") {
        const p = { inv: o } as { inv: HistoryOp; done?: HistoryOp };
        out.push(p);
        const l = open.get(key(o)) ?? [];
        l.push(o);
        open.set(key(o), l);
      } else {
        const inv = open.get(key(o))?.shift();
        const p = inv && out.find((x) => x.inv === inv);
        if (p) p.done = o;
      }
    }
    return out;
  }
}

/** How a failed call completes: the client gave up (info) or the peer answered with an error (fail). */
export function outcomeOf(e: unknown): { type: Outcome; error: { code: string; message: string } } {
  if (e instanceof RpcError) {
    const indeterminate = /context deadline exceeded|ttrpc: closed|canceled/i.test(e.message);
    return { type: indeterminate ? "info" : "fail", error: { code: e.codeName, message: e.message } };
  }
  return { type: "fail", error: { code: "Unknown", message: (e as Error)?.message ?? String(e) } };
}

/** One line per op, Jepsen's way: index, time, process, type, f, value. */
export function formatHistory(ops: HistoryOp[]): string {
  return ops
    .map((o) => {
      const what = [o.container, o.exec_id].filter(Boolean).join("/");
      const v = o.error ? `${o.error.code}: ${o.error.message}` : o.value === undefined ? "" : JSON.stringify(o.value);
      return `${String(o.index).padStart(4)} ${o.time.toFixed(1).padStart(9)}ms ${o.process.padEnd(9)} ${o.type.padEnd(6)} ${o.f}${what ? ` ${what}` : ""}${v ? ` ${v}` : ""}`;
    })
    .join("\n");
}
