// The shim's end of port-forwarding into a VM: each connection that reached
// the pod namespace's loopback (the QEMU driver's loopback.ts) is carried to
// the guest's 127.0.0.1:<port> over the agent's shimlab.v1.PortForward
// service, the way kata carries a process's stdio: unary calls on the one
// agent connection, a Read that waits for data, an empty Read for EOF.
//
//  - refused: a guest port nobody listens on resets the client's connection
//    (RST), the nearest a redirected connection can come to "connection
//    refused" (the kernel completed its handshake before we could ask);
//  - backpressure both ways: the client's socket stays paused while a Write
//    is out (the agent answers once the guest's kernel took the bytes), and
//    the next Read waits until the client's socket has drained;
//  - half-close: the client's FIN becomes CloseWrite, the guest's an end();
//  - a reset on either side resets the other.
import type net from "node:net";
import type { PortForwardApi } from "../agent/client";
import { isAborted, isNotImplemented, isUnavailable } from "../errdefs";
import type { Logger } from "../util/logger";

/** Bytes asked for per Read (the agent caps what it answers). */
export const RELAY_READ = 256 << 10;

export type RelayApi = Pick<PortForwardApi, "Dial" | "Write" | "Read" | "CloseWrite" | "Close">;

/** Resolves once the socket can take more (or is gone). */
function drained(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off("drain", done);
      sock.off("close", done);
      resolve();
    };
    sock.on("drain", done);
    sock.on("close", done);
  });
}

class RelayedConnection {
  private downDone = false;
  private upDone = false;
  private closed = false;
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly relay: PortRelay,
    private readonly api: RelayApi,
    private readonly sock: net.Socket,
    readonly port: number,
    readonly streamId: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    const s = this.sock;
    s.on("data", (d: Buffer) => {
      // Nothing more from the client until the guest has this: its TCP window does the rest.
      s.pause();
      this.writes = this.writes.then(async () => {
        if (this.closed) return;
        try {
          await this.api.Write({ streamId: this.streamId, data: d });
          if (!this.closed) s.resume();
        } catch (e) {
          this.fail("write to the guest", e);
        }
      });
    });
    s.on("end", () => {
      this.writes = this.writes.then(async () => {
        if (this.closed) return;
        try {
          await this.api.CloseWrite({ streamId: this.streamId });
        } catch (e) {
          return this.fail("half-close toward the guest", e);
        }
        this.upDone = true;
        this.finishIfDone();
      });
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      // The client reset us (or the socket broke): the guest's end is aborted the same way.
      this.logger.debug("port-forward client connection failed", { port: this.port, error: e.message });
      void this.close(true);
    });
    // A clean close (both FINs) may come before CloseWrite is answered: let it be, then end quietly.
    s.on("close", (hadError: boolean) => void this.writes.then(() => this.close(hadError || !this.downDone)));
    s.resume();
    void this.pumpDown();
  }

  private async pumpDown(): Promise<void> {
    while (!this.closed) {
      let data: Buffer;
      try {
        data = (await this.api.Read({ streamId: this.streamId, len: RELAY_READ })).data;
      } catch (e) {
        return this.fail("read from the guest", e);
      }
      if (this.closed) return;
      if (!data.length) {
        this.sock.end();
        this.downDone = true;
        this.finishIfDone();
        return;
      }
      if (!this.sock.write(data)) await drained(this.sock);
    }
  }

  private finishIfDone(): void {
    if (this.upDone && this.downDone) void this.close(false);
  }

  /** A failed call: the guest's end reset or lost; the client's connection is reset too. */
  private fail(what: string, e: unknown): void {
    if (this.closed) return;
    (isAborted(e) ? this.logger.debug : this.logger.warn).call(this.logger, `port-forward: ${what} failed`, {
      port: this.port,
      stream: this.streamId,
      error: (e as Error).message,
    });
    if (!this.sock.destroyed) this.sock.resetAndDestroy();
    void this.close(true);
  }

  /** Ends the guest's end (reset: abort it) and forgets the connection; once. */
  async close(reset: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.relay.forget(this);
    if (reset && !this.sock.destroyed) this.sock.resetAndDestroy();
    await this.api.Close({ streamId: this.streamId, reset }).catch((e: Error) => {
      // NotFound: the agent dropped it already (sandbox destroyed); Unavailable: it is gone.
      this.logger.debug("port-forward: Close", { stream: this.streamId, error: e.message });
    });
  }
}

/** Every connection the pod's loopback hands over, carried to the guest. */
export class PortRelay {
  private readonly conns = new Set<RelayedConnection>();
  private closed = false;
  private unimplementedLogged = false;

  constructor(
    private readonly api: RelayApi,
    private readonly logger: Logger,
  ) {}

  get open(): number {
    return this.conns.size;
  }

  /** Takes a (paused) client connection meant for the guest's 127.0.0.1:<port>. */
  handle(sock: net.Socket, port: number): void {
    sock.on("error", () => {}); // until the connection's own handler is on
    if (this.closed) {
      sock.resetAndDestroy();
      return;
    }
    void this.dial(sock, port);
  }

  private async dial(sock: net.Socket, port: number): Promise<void> {
    let streamId: number;
    try {
      streamId = (await this.api.Dial({ port })).streamId;
    } catch (e) {
      this.refused(port, e);
      if (!sock.destroyed) sock.resetAndDestroy();
      return;
    }
    const c = new RelayedConnection(this, this.api, sock, port, streamId, this.logger);
    if (this.closed || sock.destroyed) {
      // The client gave up (or the sandbox stopped) while the guest answered.
      if (!sock.destroyed) sock.resetAndDestroy();
      await c.close(true);
      return;
    }
    this.conns.add(c);
    c.start();
  }

  private refused(port: number, e: unknown): void {
    if (isNotImplemented(e)) {
      // A kata-agent: it has no such service. Said once, clearly; every connection is reset.
      if (!this.unimplementedLogged) {
        this.logger.error("port-forward: the agent does not serve shimlab.v1.PortForward (not shimlab's agent?): connections to the pod's localhost are reset", { error: (e as Error).message });
        this.unimplementedLogged = true;
      }
      return;
    }
    // Nothing listening in the guest is the everyday case (Unavailable): the client sees its reset.
    (isUnavailable(e) ? this.logger.info : this.logger.warn).call(this.logger, "port-forward: dial in the guest failed; client connection reset", { port, error: (e as Error).message });
  }

  forget(c: RelayedConnection): void {
    this.conns.delete(c);
  }

  /** Resets every carried connection: the sandbox is going (its agent's Close answers are not waited for). */
  close(): void {
    this.closed = true;
    for (const c of [...this.conns]) void c.close(true);
  }
}
