// The words a launcher hands a parked shim daemon (src/shim/park.ts) with the listening socket and
// the log fifo: what a daemon it spawned would have had. native/oneshot.c writes them in C,
// src/shim/start.ts with formatHandoff; each is NUL-terminated, after a 4-byte length the sender
// puts in front.
export const HANDOFF_VERSION = "shimlab-handoff-1";

export interface Handoff {
  node: string;
  script: string;
  cwd: string;
  /** The factory socket the launcher asked, as it read the configuration's [factory] socket. */
  factory: string;
  args: string[];
  env: Record<string, string>;
}

export function formatHandoff(h: Handoff): Buffer {
  const fields = [HANDOFF_VERSION, h.node, h.script, h.cwd, h.factory, String(h.args.length), ...h.args, ...Object.entries(h.env).map(([k, v]) => `${k}=${v}`)];
  return Buffer.from(fields.map((f) => f + "\0").join(""));
}

export function parseHandoff(data: Buffer): Handoff {
  const f = data.toString("utf8").split("\0");
  if (f.pop() !== "") throw new Error("the hand-over does not end in NUL");
  const [version, node, script, cwd, factory, nargs] = f;
  if (version !== HANDOFF_VERSION) throw new Error(`hand-over version ${JSON.stringify(version)}, want ${HANDOFF_VERSION}`);
  const n = Number(nargs);
  if (!Number.isInteger(n) || n < 0 || 6 + n > f.length) throw new Error("the hand-over's argument count is wrong");
  const env: Record<string, string> = {};
  for (const e of f.slice(6 + n)) {
    const eq = e.indexOf("=");
    if (eq <= 0) throw new Error(`the hand-over's environment holds ${JSON.stringify(e)}`);
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return { node, script, cwd, factory, args: f.slice(6, 6 + n), env };
}
