// containerd's failpoint grammar (fail(9) style), so scenarios written for
// containerd's failpoint shim carry over:
//
//   <count>*<type>[(arg)][-><more terms>]      e.g. 1*off->1*error(please retry)
//
// type is off, error(msg), panic(msg) or delay(ms). Each call takes the first
// term with count left and spends one; when none is left the call goes through.
import { RpcError, Code } from "../ttrpc/status";
import type { Interceptor } from "../ttrpc/server";

export type FailpointAction = { type: "off" } | { type: "error"; message: string } | { type: "panic"; message: string } | { type: "delay"; ms: number };

interface Entry {
  count: number;
  action: FailpointAction;
}

export class FailpointSyntaxError extends Error {}

export class Failpoint {
  private readonly entries: Entry[];

  constructor(
    readonly name: string,
    readonly terms: string,
  ) {
    this.entries = parseTerms(terms);
  }

  /** The action for this call, spending one count of the first live term (null: no term left). */
  next(): FailpointAction | null {
    for (const e of this.entries) {
      if (e.count === 0) continue;
      e.count--;
      return e.action;
    }
    return null;
  }

  /** What is left, in the grammar (counts decrease as calls are made). */
  toString(): string {
    return this.entries
      .map((e) => {
        const a = e.action;
        const base = `${e.count}*${a.type}`;
        return a.type === "off" ? base : a.type === "delay" ? `${base}(${a.ms})` : `${base}(${a.message})`;
      })
      .join("->");
  }
}

function parseInt64(s: string, term: string, what: string): [number, string] {
  const m = /^[0-9]+/.exec(s);
  if (!m || s[m[0].length] !== term) throw new FailpointSyntaxError(`failpoint: expected ${what} followed by '${term}' at ${JSON.stringify(s)}`);
  return [Number(m[0]), s.slice(m[0].length + 1)];
}

export function parseTerms(terms: string): Entry[] {
  let rest = terms.trim();
  const out: Entry[] = [];
  for (;;) {
    const [count, r1] = parseInt64(rest, "*", "a count");
    rest = r1;
    let action: FailpointAction;
    if (rest.startsWith("off")) {
      action = { type: "off" };
      rest = rest.slice(3);
    } else if (rest.startsWith("error(") || rest.startsWith("panic(")) {
      const type = rest.startsWith("error(") ? "error" : "panic";
      rest = rest.slice(6);
      const end = rest.indexOf(")");
      if (end <= 0) throw new FailpointSyntaxError(`failpoint: ${type} needs a message in parentheses`);
      action = { type, message: rest.slice(0, end) };
      rest = rest.slice(end + 1);
    } else if (rest.startsWith("delay(")) {
      const [ms, r2] = parseInt64(rest.slice(6), ")", "milliseconds");
      action = { type: "delay", ms };
      rest = r2;
    } else {
      throw new FailpointSyntaxError(`failpoint: invalid type at ${JSON.stringify(rest)} (want off, error(msg), panic(msg) or delay(ms))`);
    }
    out.push({ count, action });
    if (!rest) return out;
    if (!rest.startsWith("->")) throw new FailpointSyntaxError(`failpoint: invalid cascading terms at ${JSON.stringify(rest)}`);
    rest = rest.slice(2);
  }
}

export class FailpointTable {
  private readonly points = new Map<string, Failpoint>();

  set(method: string, terms: string): void {
    this.points.set(method, new Failpoint(method, terms));
  }

  get(method: string): Failpoint | undefined {
    return this.points.get(method);
  }

  get size(): number {
    return this.points.size;
  }

  /** Methods named by `<prefix><Method>` keys, e.g. containerd's io.containerd.runtime.v2.shim.failpoint.Start. */
  loadPrefixed(map: Record<string, string> | undefined, prefix: string): void {
    for (const [k, v] of Object.entries(map ?? {})) if (k.startsWith(prefix)) this.set(k.slice(prefix.length), v);
  }
}

/** The annotation containerd's failpoint shim reads, one per Task method. */
export const SHIM_FAILPOINT_ANNOTATION = "io.containerd.runtime.v2.shim.failpoint.";

export interface FailpointHooks {
  /** A panic term: what crashing means for this process (default: exit 2 as a Go panic does). */
  onPanic?: (method: string, message: string) => void;
  onFire?: (method: string, action: FailpointAction) => void;
}

/** A ttrpc interceptor applying the table's failpoints by method name. */
export function failpointInterceptor(table: FailpointTable, hooks: FailpointHooks = {}): Interceptor {
  return async (call, next) => {
    const fp = table.get(call.method);
    const action = fp?.next();
    if (!action || action.type === "off") return next();
    hooks.onFire?.(call.method, action);
    if (action.type === "delay") {
      await new Promise((r) => setTimeout(r, action.ms));
      return next();
    }
    if (action.type === "error") throw new RpcError(Code.Unknown, action.message);
    (hooks.onPanic ?? defaultPanic)(call.method, action.message);
    throw new RpcError(Code.Internal, `panic: ${action.message}`);
  };
}

function defaultPanic(method: string, message: string): void {
  process.stderr.write(`panic: ${message}\n\ngoroutine 1 [running]:\nfailpoint ${method}\n`);
  process.exit(2);
}
