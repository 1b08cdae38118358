// The proxy process `shimlab sniff`'s wrapper leaves behind for one real shim
// daemon, detached as a shim daemon is: it forwards containerd's connections
// to the shim's socket, and the shim's event connections to containerd's ttrpc
// socket, recording both into the session's trace. It goes when the real
// shim's socket does.
//
// Handshake with the wrapper, on stdin/stdout (pipes the wrapper closes after):
//   daemon → "events <path>"    the socket to give the real shim as TTRPC_ADDRESS
//   wrapper → "<address> <protocol>" | "-"   the real shim's socket (ttrpc or grpc), or "-" (not needed: exit)
//   daemon → "listen <path>"    the socket to give containerd
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import crypto from "node:crypto";
import { TraceRecorder } from "../trace/recorder";
import { WireTap } from "../trace/wire-tap";
import { UnixProxy } from "./proxy";
import { EVENT_SERVICES, SHIM_SERVICES, recordForward } from "./services";
import type { ForwardRequest } from "../gen/containerd.services.events.ttrpc.v1";

export const TRACE_FILE = "trace.jsonl";

/** Where the proxy for a real shim socket listens: one per address, so a pod's second task finds it. */
export function proxyPathFor(session: string, address: string): string {
  return path.join(session, `s-${crypto.createHash("sha256").update(address).digest("hex").slice(0, 16)}.sock`);
}

export function bare(address: string): string {
  return address.replace(/^unix:\/\//, "");
}

/** Whether something accepts connections on a unix socket. */
export function alive(sock: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(sock);
    const t = setTimeout(() => (c.destroy(), resolve(false)), timeoutMs);
    c.once("connect", () => (clearTimeout(t), c.destroy(), resolve(true)));
    c.once("error", () => (clearTimeout(t), resolve(false)));
  });
}

export async function daemonMain(argv: string[]): Promise<number> {
  const [session, containerdTtrpc] = argv;
  const rec = new TraceRecorder(path.join(session, TRACE_FILE), "sniff");
  const tag = crypto.randomBytes(4).toString("hex");
  const eventsPath = path.join(session, `e-${tag}.sock`);
  const events = new UnixProxy({
    listen: eventsPath,
    upstream: bare(containerdTtrpc),
    tap: (conn) => new WireTap({ rec, from: "shim", to: "containerd", services: EVENT_SERVICES, conn: 1000 + conn, onCall: (_s, m, req) => m === "Forward" && recordForward(rec, req as ForwardRequest) }),
    onUpstreamError: (conn, e) => rec.record("note", { text: `events connection ${conn}: containerd's ttrpc socket: ${e.message}` }),
  });
  await events.listen();
  process.stdout.write(`events ${eventsPath}\n`);
  const lines = readline.createInterface({ input: process.stdin });
  const answer = await new Promise<string>((resolve) => {
    lines.once("line", (l) => resolve(l.trim()));
    lines.once("close", () => resolve("-"));
  });
  lines.close();
  const [address, protocol = "ttrpc"] = answer.split(" ");
  if (address === "-" || !address) {
    await events.close();
    return 0;
  }
  const listen = proxyPathFor(session, address);
  let shim: UnixProxy | null = null;
  const check = async () => {
    // The real shim's socket refusing means its daemon is gone (containerd shut it down): so are we.
    if (shim && shim.open === 0 && !(await alive(bare(address)))) await stop();
  };
  shim = new UnixProxy({
    listen,
    upstream: bare(address),
    // gRPC shims speak HTTP/2: forwarded as they are, but not decoded.
    tap: (conn) => (protocol === "grpc" ? null : new WireTap({ rec, from: "containerd", to: "shim", services: SHIM_SERVICES, conn })),
    onUpstreamError: (conn, e) => rec.record("note", { text: `connection ${conn}: the shim's socket ${bare(address)}: ${e.message}` }),
    onIdle: () => void check(),
  });
  await shim.listen();
  rec.record("note", { text: `sniffing ${address} at ${listen}` });
  process.stdout.write(`listen ${listen}\n`);
  const timer = setInterval(() => void check(), 2000);
  let stopping = false;
  async function stop(): Promise<void> {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    await shim?.close();
    await events.close();
    rec.record("note", { text: `${address} is gone: the proxy stops` });
    process.exit(0);
  }
  process.on("SIGTERM", () => void stop());
  return new Promise<number>(() => {
    /* runs until stop() */
  });
}

if (require.main === module) {
  // Detached from the wrapper's pipes once they close: writes to them must not kill it.
  process.stdout.on("error", () => {});
  daemonMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      fs.appendFileSync(path.join(process.argv[2] ?? ".", "daemon.log"), `${new Date().toISOString()} ${(e as Error).stack}\n`);
      process.exit(1);
    },
  );
}
