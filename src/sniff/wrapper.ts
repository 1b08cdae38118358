// The shim binary `shimlab sniff` gives containerd: it runs the real shim for
// every action with the same arguments, stdin and environment, and for
// `start` puts a recording proxy (daemon.ts) between containerd and the
// address the real shim answers, and between the real shim and containerd's
// events socket. containerd and the real shim each see the other's bytes
// unchanged; only the socket path in start's answer (and the bundle's address
// file, which containerd reads again after a restart) names the proxy.
import fs from "node:fs";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import readline from "node:readline";
import { TraceRecorder } from "../trace/recorder";
import { alive, bare, proxyPathFor, TRACE_FILE } from "./daemon";

export const SESSION_ENV = "SHIMLAB_SNIFF_SESSION";

export interface SessionConfig {
  /** The real shim binary. */
  shim: string;
  /**
   * A shimlab shim: its own wire tap on the agent transport records the shim→agent leg (and the VM)
   * into the same trace, scoped so that containerd's side is not recorded twice.
   */
  agent?: boolean;
}

function readStdin(): Buffer {
  try {
    return fs.readFileSync(0);
  } catch {
    return Buffer.alloc(0);
  }
}

function flag(argv: string[], name: string): string {
  const i = argv.findIndex((a) => a === `-${name}` || a === `--${name}`);
  return i >= 0 ? (argv[i + 1] ?? "") : "";
}

/** The address in start's answer: a line (containerd 1.x) or JSON bootstrap (2.x). */
export function parseStartOutput(out: string): { address: string; protocol: string; json: Record<string, unknown> | null } {
  const t = out.trim();
  if (t.startsWith("{")) {
    try {
      const json = JSON.parse(t) as Record<string, unknown>;
      return { address: String(json.address ?? ""), protocol: String(json.protocol ?? "ttrpc"), json };
    } catch {
      /* not JSON after all */
    }
  }
  return { address: t, protocol: "ttrpc", json: null };
}

/** start's answer with the proxy's socket in place of the real one, in the same form. */
export function rewriteStartOutput(out: string, real: string, proxy: string): string {
  const withScheme = real.startsWith("unix://") ? `unix://${proxy}` : proxy;
  const parsed = parseStartOutput(out);
  if (parsed.json) return JSON.stringify({ ...parsed.json, address: withScheme });
  return out.replace(real, withScheme);
}

export async function wrapperMain(argv: string[]): Promise<number> {
  const session = process.env[SESSION_ENV];
  if (!session) {
    process.stderr.write(`containerd-shim-sniff-v2: ${SESSION_ENV} is not set (made by shimlab sniff)\n`);
    return 2;
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(session, "session.json"), "utf8")) as SessionConfig;
  const action = argv[argv.length - 1];
  const stdin = action === "start" || action === "delete" ? readStdin() : Buffer.alloc(0);
  if (action !== "start" && action !== "delete") {
    const r = spawnSync(cfg.shim, argv, { stdio: "inherit" });
    return r.status ?? 1;
  }
  const rec = new TraceRecorder(path.join(session, TRACE_FILE), `sniff-${action}`);
  const id = rec.nextId();
  const task = flag(argv, "id");
  rec.record("exec.call", { id, from: "containerd", to: "shim", action, argv, namespace: flag(argv, "namespace"), task, cwd: process.cwd(), shim: cfg.shim });
  if (action === "delete") {
    const r = spawnSync(cfg.shim, argv, { input: stdin, env: process.env, maxBuffer: 64 << 20 });
    process.stdout.write(r.stdout ?? Buffer.alloc(0));
    process.stderr.write(r.stderr ?? Buffer.alloc(0));
    const code = r.status ?? 1;
    rec.record("exec.reply", { id, from: "shim", to: "containerd", action, task, code, ok: code === 0 });
    return code;
  }
  return start(cfg, session, argv, stdin, rec, id, task);
}

async function start(cfg: SessionConfig, session: string, argv: string[], stdin: Buffer, rec: TraceRecorder, id: string, task: string): Promise<number> {
  const containerdTtrpc = process.env.TTRPC_ADDRESS ?? "";
  // The proxy daemon: its own session, never start's stdout/stderr (containerd reads those to EOF).
  const log = fs.openSync(path.join(session, "daemon.log"), "a");
  const daemon = spawn(process.execPath, [path.join(__dirname, "daemon.js"), session, containerdTtrpc], { detached: true, stdio: ["pipe", "pipe", log] });
  fs.closeSync(log);
  const lines = readline.createInterface({ input: daemon.stdout! });
  const next = () => new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    daemon.once("exit", (c) => reject(new Error(`sniff daemon exited (${c}); see ${session}/daemon.log`)));
  });
  const fail = (msg: string, code = 1) => {
    process.stderr.write(`containerd-shim-sniff-v2: ${msg}\n`);
    rec.record("exec.reply", { id, from: "shim", to: "containerd", action: "start", task, code, ok: false, error: msg });
    return code;
  };
  let eventsPath: string;
  try {
    eventsPath = (await next()).replace(/^events /, "");
  } catch (e) {
    return fail((e as Error).message);
  }
  // The real shim's daemon inherits start's environment: its events go to the proxy.
  const agentTrace = cfg.agent ? { SHIMLAB_TRACE: path.join(session, TRACE_FILE), SHIMLAB_TRACE_SCOPE: "agent" } : {};
  const r = spawnSync(cfg.shim, argv, { input: stdin, env: { ...process.env, ...agentTrace, TTRPC_ADDRESS: eventsPath }, maxBuffer: 16 << 20 });
  const out = (r.stdout ?? Buffer.alloc(0)).toString();
  const code = r.status ?? 1;
  if (code !== 0) {
    daemon.stdin!.end("-\n");
    process.stdout.write(r.stdout ?? "");
    process.stderr.write(r.stderr ?? "");
    rec.record("exec.reply", { id, from: "shim", to: "containerd", action: "start", task, code, ok: false, error: (r.stderr ?? "").toString().trim() || out.trim() });
    return code;
  }
  const { address, protocol } = parseStartOutput(out);
  let proxy = proxyPathFor(session, address);
  if (await alive(proxy)) {
    // A pod's next task: the real shim answered its running daemon's address, already proxied.
    daemon.stdin!.end("-\n");
  } else {
    daemon.stdin!.write(`${address} ${protocol}\n`);
    try {
      proxy = (await next()).replace(/^listen /, "");
    } catch (e) {
      return fail((e as Error).message);
    }
    daemon.stdin!.end();
  }
  lines.close();
  daemon.stdout!.destroy();
  daemon.unref();
  const answer = rewriteStartOutput(out, address, proxy);
  const addressFile = path.join(process.cwd(), "address");
  try {
    if (bare(fs.readFileSync(addressFile, "utf8").trim()) === bare(address)) fs.writeFileSync(addressFile, address.startsWith("unix://") ? `unix://${proxy}` : proxy);
  } catch {
    /* a shim that writes no address file */
  }
  process.stdout.write(answer);
  process.stderr.write(r.stderr ?? "");
  rec.record("exec.reply", { id, from: "shim", to: "containerd", action: "start", task, code: 0, ok: true, address: answer.trim(), realAddress: address });
  return 0;
}

if (require.main === module) {
  wrapperMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`containerd-shim-sniff-v2: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
