// The shim daemon: serves the Task API on the socket `start` bound (fd 3),
// publishes events to containerd, and exits once Shutdown finds no task left.
import fs from "node:fs";
import net from "node:net";
import type { ShimFlags } from "./flags";
import { Server } from "../ttrpc/server";
import { Task as TaskV2 } from "../gen/containerd.task.v2";
import type { Logger } from "../util/logger";
import { TaskService } from "./task-service";
import { LogOnlySink, Publisher, type EventSink } from "./publisher";
import { bootDaemon, type DaemonBoot } from "./early-agent";
import { Sandbox as SandboxV1 } from "../gen/containerd.runtime.sandbox.v1";
import { SandboxService } from "./sandbox-service";
import type { DaemonDecorations } from "./decorations";
import { native } from "../native";
import { trimWhenSettled } from "../util/trim";
import { markUnusual } from "../util/code-cache";
import { clearStopping, markStopping, stoppingMarker } from "./stopping";

/**
 * containerd 2.x's task v3 service: v2's messages under another package name, field for field
 * (proto/containerd/task/v3/shim.proto; test/unit/task-v3.test.ts holds them to it). Served with
 * v2's codecs, a daemon does not hold a second copy of 26 of them; a trace, which names the
 * messages it shows, loads v3's own.
 */
function taskV3(): typeof import("../gen/containerd.task.v3").Task {
  if (process.env.SHIMLAB_TRACE) {
    markUnusual();
    return (require("../gen/containerd.task.v3") as typeof import("../gen/containerd.task.v3")).Task;
  }
  return { ...TaskV2, name: "containerd.task.v3.Task" } as unknown as typeof import("../gen/containerd.task.v3").Task;
}

/** How long a shim whose sandbox was shut down waits for containerd to hang up before it closes the connection itself. */
const SANDBOX_PEER_HANGUP_MS = 2_000;

export interface DaemonHandle {
  server: Server;
  service: TaskService;
  sandboxes: SandboxService;
  events: EventSink;
  logger: Logger;
  shutdown(code?: number): Promise<void>;
}

/** decorations: the failpoint shim's wrappers (src/fp-shim); the production shim passes none. */
export function runDaemon(flags: ShimFlags, boot: DaemonBoot = bootDaemon(flags), decorations: DaemonDecorations = {}): DaemonHandle {
  const bundle = process.cwd();
  const { logger } = boot;
  const ctx = { bundle, logger };
  let config = boot.config;
  const wrapHypervisor = decorations.hypervisor;
  if (wrapHypervisor) {
    const plain = config;
    config = { ...plain, hypervisor: () => wrapHypervisor(plain.hypervisor(), ctx) };
  }
  const ttrpcAddress = process.env.TTRPC_ADDRESS;
  let events: EventSink = ttrpcAddress
    ? new Publisher({ address: ttrpcAddress, namespace: flags.namespace, logger })
    : new LogOnlySink(logger);
  // Traced innermost, so the trace shows the events as they leave, faults and all.
  if (process.env.SHIMLAB_TRACE) ({ events, config } = require("../trace/shim").traceDaemon(events, config));
  if (decorations.events) events = decorations.events(events, ctx);

  const server = new Server();
  if (process.env.SHIMLAB_TRACE) require("../trace/shim").traceServer(server);
  decorations.server?.(server, ctx);
  let grpcTransport: import("./grpc-server").GrpcTransport | undefined;
  let exiting = false;
  const socketFile = flags.socket;
  const shutdown = async (code = 0, peersFirstMs = 0): Promise<void> => {
    if (exiting) return;
    exiting = true;
    logger.info("shim exiting", { tasks: service.taskCount, sandbox: sandboxes.current?.id });
    const stopping = service.stopping();
    if (stopping) {
      // Served until the sandbox has stopped: `delete` leaves the cleanup to a live shim, and a new `start` waits.
      try {
        if (socketFile) markStopping(socketFile);
      } catch (e) {
        logger.warn("cannot mark the socket as stopping", { error: (e as Error).message });
      }
      await stopping;
    }
    if (peersFirstMs) await server.peersGone(peersFirstMs);
    await server.close().catch(() => {});
    await grpcTransport?.close().catch(() => {});
    if (socketFile) {
      fs.rmSync(socketFile, { force: true });
      clearStopping(socketFile);
    }
    // What the driver booted ahead for a Create that never came (the untraced configuration's own driver).
    try {
      await boot.config.hypervisor().release();
    } catch {
      /* the exit goes on: an agent booted ahead dies with its lifeline, this process */
    }
    await events.flush(2_000);
    events.close();
    process.exit(code);
  };
  const service = new TaskService({
    namespace: flags.namespace,
    shimId: flags.id,
    events,
    logger,
    config,
    onShutdown: () => void shutdown(0),
  });

  const sandboxes = new SandboxService({ namespace: flags.namespace, shimId: flags.id, tasks: service, logger, config, configError: boot.configError,
    // containerd's sandbox controller fails RemovePodSandbox on a ShutdownSandbox whose answer races the connection's
    // end (it ignores ttrpc.ErrClosed only after the Task API's Shutdown), and closes its connection right after.
    onShutdown: () => void shutdown(0, SANDBOX_PEER_HANGUP_MS) });

  server.register(TaskV2, service.impl);
  // containerd 2.x speaks the same API as task v3 when the shim says so.
  const TaskV3 = taskV3();
  server.register(TaskV3, service.impl as never);
  // ...and the Sandbox API on the same socket, for a CRI runtime with sandboxer = "shim".
  server.register(SandboxV1, sandboxes.impl);
  server.on("handlerError", (call, err) => logger.error("task call failed", { method: `${call.service}/${call.method}`, error: String((err as Error)?.stack ?? err) }));
  server.on("protocolError", (_c, reason) => logger.warn("dropped a connection", { reason }));

  const listener = net.createServer();
  // containerd 2.x may have been told (by `start`'s bootstrap result) to speak gRPC to us.
  const protocol = process.env.SHIMLAB_DAEMON_PROTOCOL || "ttrpc";
  if (protocol === "grpc") {
    markUnusual();
    const { serveGrpc } = require("./grpc-server") as typeof import("./grpc-server");
    grpcTransport = serveGrpc(server, listener, [TaskV3, TaskV2, SandboxV1]);
  } else server.serve(listener);
  // This daemon owns the socket now: a stopping marker beside it is a dead one's, which a start must not take for its own.
  if (socketFile && fs.existsSync(stoppingMarker(socketFile))) clearStopping(socketFile);
  if (hasFd3()) listener.listen({ fd: 3 });
  else if (socketFile) listener.listen(socketFile, () => fs.chmodSync(socketFile, 0o600));
  else throw new Error("the shim daemon needs a socket: fd 3 from start, or -socket");
  logger.info("shim serving", { socket: socketFile, protocol, config: config.source, hypervisor: config.hypervisorKind });
  trimWhenSettled(() => native().mallocTrim());

  const crash = async (why: string) => {
    logger.error("shim terminating", { reason: why });
    await service.cleanupAll().catch(() => {});
    await shutdown(1);
  };
  process.on("SIGTERM", () => void crash("SIGTERM"));
  process.on("SIGINT", () => void crash("SIGINT"));
  process.on("uncaughtException", (e) => logger.error("uncaught exception", { error: String(e.stack ?? e) }));
  process.on("unhandledRejection", (e) => logger.error("unhandled rejection", { error: String((e as Error)?.stack ?? e) }));
  return { server, service, sandboxes, events, logger, shutdown };
}

function hasFd3(): boolean {
  try {
    return fs.fstatSync(3).isSocket();
  } catch {
    return false;
  }
}
