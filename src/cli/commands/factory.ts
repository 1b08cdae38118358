// shimlab factory run|start|stop|status: the node's pool of warm sandboxes
// (src/hypervisor/factory). `run` serves in the foreground (a systemd unit's
// ExecStart, deploy/shimlab-factory.service); `start` runs it in the
// background and returns once it answers; `stop` ends it (its pooled agents
// with it, never the ones it handed out); `status` asks it.
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { dispatch, str, bool, type Parsed } from "../args";
import { loadConfig } from "../../shim/config";
import { Factory } from "../../hypervisor/factory/service";
import { factoryStatus, untilFactoryReady } from "../../hypervisor/factory/client";
import { DEFAULT_FACTORY_DIR } from "../../hypervisor/factory/protocol";
import type { FactoryStatus } from "../../hypervisor/factory/protocol";
import { FdLogger } from "../../util/logger";
import { processAlive } from "../../util/proc";
import { shimlabDist } from "../../hypervisor/qemu/image-manifest";

export function factoryCommand(argv: string[]): Promise<number> {
  return dispatch(["factory"], argv, (sub, p) => (sub === "run" ? run(p) : sub === "start" ? start(p) : sub === "stop" ? stop(p) : status(p)));
}

interface Settings {
  cfg: ReturnType<typeof loadConfig>;
  dir: string;
  socket: string;
  size: number;
  /** Parked shim daemons; 0 without the bundle (`npm run build`), which they run. */
  daemons: number;
  agentRuntime: "auto" | "runc" | "host";
  debug: boolean;
}

/** What a parked daemon runs: the bundle launcher that native/oneshot.c starts a daemon from. */
function shimMain(): string {
  return path.join(shimlabDist(), "bundle", "shim-main.js");
}

/** The options over the configuration's [factory] and [agent], over the defaults. */
function settings(p: Parsed): Settings {
  const cfg = loadConfig(str(p, "config"));
  const dir = path.resolve(str(p, "dir") ?? DEFAULT_FACTORY_DIR);
  const socket = str(p, "socket") ?? (str(p, "dir") && !str(p, "config") ? path.join(dir, "factory.sock") : cfg.factory.socket);
  const sizeText = str(p, "size");
  const size = sizeText === undefined ? cfg.factory.poolSize : Number(sizeText);
  if (!Number.isInteger(size) || size < 0 || size > 64) throw new Error(`--size ${sizeText}: want an integer from 0 to 64`);
  const daemonsText = str(p, "daemons");
  const daemons = daemonsText === undefined ? (sizeText === undefined ? cfg.factory.daemonPoolSize : size) : Number(daemonsText);
  if (!Number.isInteger(daemons) || daemons < 0 || daemons > 64) throw new Error(`--daemons ${daemonsText}: want an integer from 0 to 64`);
  return { cfg, dir, socket: path.resolve(socket), size, daemons: fs.existsSync(shimMain()) ? daemons : 0, agentRuntime: cfg.agentRuntime, debug: cfg.debug };
}

async function run(p: Parsed): Promise<number> {
  const s = settings(p);
  const logger = new FdLogger(2, s.debug ? "debug" : "info", { component: "factory" });
  const f = new Factory({ ...s, logger, warmer: s.cfg.warmer({ logger }), daemons: { node: process.execPath, script: shimMain(), size: s.daemons } });
  await f.start();
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  logger.info("factory stopping");
  await f.stop();
  logger.info("factory stopped");
  // nothing of ours is left to wait for (a pooled agent's readiness timer would hold the loop)
  process.exit(0);
}

function line(st: FactoryStatus, socket: string): string {
  const what = st.kind === "qemu" ? `QEMU VMs ready (guest runtime ${st.agentRuntime})` : `host agents ready (${st.agentRuntime}, cgroups under ${st.cgroupParent})`;
  const d = st.daemons;
  const parked = d ? `; ${d.ready}/${d.size} parked shim daemons, handed out ${d.handedOut}, missed ${d.misses}, replaced ${d.replaced}` : "";
  return `factory ${st.pid} on ${socket}: ${st.ready}/${st.size} warm ${what}, ${st.booting} booting; handed out ${st.handedOut}${st.held ? ` (and ${st.held} to parked daemons)` : ""}, missed ${st.misses}, replaced ${st.replaced}${parked}\n`;
}

async function start(p: Parsed): Promise<number> {
  const s = settings(p);
  const already = await factoryStatus(s.socket, 500).catch(() => null);
  if (already) {
    process.stdout.write(`already running: ${line(already, s.socket)}`);
    return 0;
  }
  fs.mkdirSync(s.dir, { recursive: true, mode: 0o700 });
  const log = path.join(s.dir, "factory.log");
  const out = fs.openSync(log, "a");
  const args = [process.argv[1], "factory", "run", "--dir", s.dir, "--socket", s.socket, "--size", String(s.size), "--daemons", String(s.daemons)];
  if (str(p, "config")) args.push("--config", str(p, "config")!);
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", out, out], env });
  fs.closeSync(out);
  child.unref();
  // ready when the pool is full, or at once with --no-wait
  // A VM under TCG boots in seconds, several at once more slowly still.
  const waitMs = s.cfg.hypervisorKind === "qemu" ? 180_000 : 15_000;
  const st = await untilFactoryReady(s.socket, { timeoutMs: waitMs, full: !bool(p, "no-wait"), gone: () => child.exitCode !== null });
  if (!st) {
    process.stderr.write(`shimlab factory: ${child.exitCode !== null ? `exited (${child.exitCode})` : `did not fill its pool in ${waitMs / 1000} s`}; log ${log}\n`);
    return 1;
  }
  process.stdout.write(line(st, s.socket));
  return 0;
}

async function stop(p: Parsed): Promise<number> {
  const s = settings(p);
  const pidFile = path.join(s.dir, "factory.pid");
  let rec: [number, string] | null = null;
  try {
    const [pid, startTime] = fs.readFileSync(pidFile, "utf8").trim().split(" ");
    rec = [Number(pid), startTime];
  } catch {
    rec = null;
  }
  if (!rec || !processAlive(rec[0], rec[1])) {
    process.stdout.write(`no factory running on ${s.dir}\n`);
    return 0;
  }
  process.kill(rec[0], "SIGTERM");
  const deadline = Date.now() + 15_000;
  while (processAlive(rec[0], rec[1])) {
    if (Date.now() > deadline) {
      process.stderr.write(`shimlab factory: ${rec[0]} still running 15 s after SIGTERM\n`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stdout.write(`factory ${rec[0]} stopped\n`);
  return 0;
}

async function status(p: Parsed): Promise<number> {
  const s = settings(p);
  const st = await factoryStatus(s.socket).catch((e: Error) => {
    process.stderr.write(`shimlab factory: ${e.message}\n`);
    return null;
  });
  if (!st) return 1;
  process.stdout.write(bool(p, "json") ? JSON.stringify(st) + "\n" : line(st, s.socket));
  return 0;
}
