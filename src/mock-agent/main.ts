// shimlab-mock-agent: serves grpc.AgentService and grpc.Health over ttrpc.
// The same program runs as a host process beside the shim or as a VM's agent;
// it shares only ttrpc and the generated protos with the shim.
//
//   --listen PATH      unix socket to serve on
//   --hvsock           expect Firecracker's hybrid-vsock "CONNECT <port>\n" first
//   --serial PATH      serve one stream on a virtio-serial port (in a guest)
//   --state-dir DIR    container bundles and runc's state
//   --runtime R        runc | crun | host | auto (runc when root and runc exist)
//   --guest            this agent is a VM's: mount storages, set the hostname
//   --watch-fd N       exit (killing its containers) when fd N reaches EOF, or, once
//                      told "ADOPT <pid> <start>" there (a factory's warm agent), when that process ends
//   --ready-fd N       write "READY\n" to fd N once the socket accepts connections
//   --log FILE         log destination (default stderr)
//   --rehearse         (a factory's VM) run a throwaway container and `ip` before serving (rehearse.ts)
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { Server } from "../ttrpc/server";
import { AgentService, Health } from "../gen/grpc";
import { FdLogger, openLogFd, type Logger } from "../util/logger";
import { MockAgent } from "./agent";
import { Reaper } from "./reaper";
import { RuncRuntime } from "./runtime/runc";
import { findOnPath } from "./runtime/exec";
import { HostRuntime } from "./runtime/host";
import type { Runtime } from "./runtime/types";
import { hasNative, native } from "../native";
import { trimWhenSettled, type Trims } from "../util/trim";
import { installFailpoints } from "./failpoints";
import { signalReady, watchLifeline, type Lifeline } from "./lifeline";
import { markUnusual } from "../util/code-cache";

/** What only an agent in a VM runs (the pod's network, port forwarding), loaded there only: a host agent's idle memory is a pod's. */
function guestModules() {
  markUnusual();
  return {
    ...(require("./network") as typeof import("./network")),
    ...(require("./port-forward") as typeof import("./port-forward")),
    PortForward: (require("../gen/shimlab.v1") as typeof import("../gen/shimlab.v1")).PortForward,
  };
}

export const AGENT_PORT = 1024;

interface Args {
  listen?: string;
  hvsock: boolean;
  serial?: string;
  stateDir: string;
  runtime: "runc" | "crun" | "host" | "auto";
  guest: boolean;
  watchFd?: number;
  readyFd?: number;
  log?: string;
  debug: boolean;
  rehearse: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { hvsock: false, stateDir: "/run/shimlab-agent", runtime: "auto", guest: false, debug: false, rehearse: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    switch (k) {
      case "--listen":
        a.listen = v();
        break;
      case "--hvsock":
        a.hvsock = true;
        break;
      case "--serial":
        a.serial = v();
        break;
      case "--state-dir":
        a.stateDir = v();
        break;
      case "--runtime": {
        const r = v();
        if (r !== "runc" && r !== "crun" && r !== "host" && r !== "auto") throw new Error(`--runtime ${r}: want runc, crun, host or auto`);
        a.runtime = r;
        break;
      }
      case "--guest":
        a.guest = true;
        break;
      case "--watch-fd":
        a.watchFd = Number(v());
        break;
      case "--ready-fd":
        a.readyFd = Number(v());
        break;
      case "--log":
        a.log = v();
        break;
      case "--debug":
        a.debug = true;
        break;
      case "--rehearse":
        a.rehearse = true;
        break;
      default:
        throw new Error(`unknown argument ${k}`);
    }
  }
  if (!a.listen && !a.serial) throw new Error("one of --listen or --serial is required");
  return a;
}

function chooseRuntime(a: Args, log: Logger, reaper: () => Reaper): Runtime {
  const isRoot = process.getuid?.() === 0;
  const want = a.runtime;
  if (want === "crun") {
    const crun = findOnPath("crun");
    if (!isRoot) throw new Error("the crun runtime needs root");
    if (!crun) throw new Error("the crun runtime needs crun on PATH");
    return new RuncRuntime(reaper(), path.join(a.stateDir, "crun"), crun, a.guest, "crun");
  }
  const runc = findOnPath("runc");
  if (want === "runc" || (want === "auto" && isRoot && runc && hasNative())) {
    if (!isRoot) throw new Error("the runc runtime needs root");
    if (!runc) throw new Error("the runc runtime needs runc on PATH");
    return new RuncRuntime(reaper(), path.join(a.stateDir, "runc"), runc, a.guest);
  }
  const why = !isRoot ? "not running as root" : !runc ? "runc is not installed" : !hasNative() ? "the native addon is not built" : "asked for";
  log.warn(`containers run directly on the host WITHOUT isolation (${why}): no namespaces, no rootfs, no cgroup limits`);
  return new HostRuntime();
}

/** Firecracker's hybrid vsock handshake on a freshly accepted unix connection. */
function acceptHvsock(sock: net.Socket, onStream: (s: net.Socket) => void, log: Logger): void {
  let buf = Buffer.alloc(0);
  let hostPort = 0;
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    const nl = buf.indexOf(0x0a);
    if (nl < 0) {
      if (buf.length > 64) sock.destroy();
      return;
    }
    sock.removeListener("data", onData);
    sock.pause();
    const line = buf.subarray(0, nl).toString("latin1").trim();
    const rest = buf.subarray(nl + 1);
    const m = /^connect\s+(\d+)$/i.exec(line);
    if (!m || Number(m[1]) !== AGENT_PORT) {
      log.warn("hybrid vsock: refused connection", { request: line });
      sock.destroy();
      return;
    }
    hostPort = 1073741824 + Math.floor(Math.random() * 1e6);
    sock.write(`OK ${hostPort}\n`);
    if (rest.length) sock.unshift(rest);
    onStream(sock);
  };
  sock.on("data", onData);
  sock.on("error", () => {});
}

export function main(argv: string[]): void {
  delete process.env.NODE_EXTRA_CA_CERTS;
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`shimlab-mock-agent: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const logFd = args.log ? openLogFd(args.log) : 2;
  const log: Logger = new FdLogger(logFd, args.debug ? "debug" : "info", { component: "mock-agent", pid: process.pid });
  fs.mkdirSync(args.stateDir, { recursive: true, mode: 0o700 });

  let reaper: Reaper | null = null;
  let runtime = chooseRuntime(args, log, () => {
    reaper = new Reaper();
    reaper.start();
    return reaper;
  });
  // Tracing (SHIMLAB_TRACE) is loaded only when asked for: otherwise nothing is wrapped.
  if (process.env.SHIMLAB_TRACE) {
    const trace = require("../trace/agent") as typeof import("../trace/agent");
    markUnusual();
    trace.traceAgentProcess();
    runtime = trace.traceRuntime(runtime);
  }

  let exiting = false;
  const server = new Server();
  // Only a guest's agent forwards ports: its loopback is the pod's. A host agent's loopback is the
  // host's (its containers join the pod's namespace, the agent does not), so there the service is
  // absent and answers Unimplemented, as a real kata-agent does.
  const guest = args.guest ? guestModules() : null;
  const portForward = guest ? new guest.GuestPortForward({ logger: log }) : null;
  const exit = async (why: string, code = 0) => {
    if (exiting) return;
    exiting = true;
    log.info("agent exiting", { reason: why });
    portForward?.close();
    await agent.shutdown().catch((e) => log.error("shutdown failed", { error: e.message }));
    await server.close().catch(() => {});
    if (args.listen) fs.rmSync(args.listen, { force: true });
    process.exit(code);
  };
  const network = guest ? new guest.GuestNetwork({ reaper, logger: log }) : null;
  const agent = new MockAgent({
    runtime,
    stateDir: args.stateDir,
    logger: log,
    guest: args.guest,
    network,
    reaper,
    onDestroyed: () => {
      portForward?.close();
      if (!args.guest) setTimeout(() => void exit("sandbox destroyed"), 50);
    },
  });
  server.register(AgentService, agent.service);
  server.register(Health, agent.health);
  if (guest && portForward) server.register(guest.PortForward, portForward.service);
  installFailpoints(server, process.env, log);
  server.on("handlerError", (call, err) => log.error("handler failed", { method: `${call.service}/${call.method}`, error: String(err?.stack ?? err) }));
  server.on("protocolError", (_c, reason) => log.warn("dropped a connection", { reason }));
  // Kata's shim keeps one connection per sandbox; the log lets a test (or a person) see that it did.
  let connections = 0;
  let lifeline: Lifeline | null = null;
  let trims: Trims | null = null;
  server.on("connection", () => {
    lifeline?.claimed();
    // a factory's agent booted (and trimmed) long ago: its pod's work starts now
    trims?.again();
    log.info("agent connection opened", { connections: ++connections });
  });

  if (args.listen) {
    fs.mkdirSync(path.dirname(args.listen), { recursive: true, mode: 0o700 });
    fs.rmSync(args.listen, { force: true });
    const l = net.createServer((sock) => {
      if (args.hvsock) acceptHvsock(sock, (s) => server.handle(s), log);
      else server.handle(sock);
    });
    l.listen(args.listen, () => {
      fs.chmodSync(args.listen!, 0o600);
      log.info("agent serving", { listen: args.listen, hvsock: args.hvsock, runtime: runtime.name });
      // The host side waits for this instead of polling the socket, like a VM's boot-complete signal.
      if (args.readyFd !== undefined) signalReady(args.readyFd, log);
      trims = trimWhenSettled(() => native().mallocTrim());
    });
    l.on("error", (e) => {
      log.error("listen failed", { error: e.message });
      void exit("listen failed", 1);
    });
  }
  if (args.serial) {
    markUnusual();
    const serve = () => (require("./serial") as typeof import("./serial")).serveSerial(args.serial!, server, log);
    if (args.rehearse && args.guest && runtime.isolated) {
      const { rehearse, guestShare, throwawayNetns, untilIdle } = require("./rehearse") as typeof import("./rehearse");
      const netns = network && reaper && hasNative() ? throwawayNetns(reaper) : null;
      void rehearse({ runtime, network, stateDir: args.stateDir, share: guestShare(), netns, settle: () => untilIdle(), logger: log }).then(serve);
    } else serve();
  }

  if (args.watchFd !== undefined) {
    // The shim (or, until it hands us out, the factory) holds the other end.
    lifeline = watchLifeline(args.watchFd, log, (why) => void exit(why));
  }
  process.on("SIGTERM", () => void exit("SIGTERM"));
  process.on("SIGINT", () => void exit("SIGINT"));
  process.on("uncaughtException", (e) => log.error("uncaught exception", { error: String(e.stack ?? e) }));
  process.on("unhandledRejection", (e) => log.error("unhandled rejection", { error: String((e as Error)?.stack ?? e) }));
  void reaper;
}

if (require.main === module) main(process.argv.slice(2));
