// A QMP client: QEMU's JSON machine protocol on a unix socket. QEMU greets,
// the client must send qmp_capabilities before anything else; replies come in
// order, carry the request's id, and are interleaved with events.
import net from "node:net";
import { EventEmitter } from "node:events";

export class QmpError extends Error {
  constructor(
    message: string,
    readonly errorClass: string,
  ) {
    super(message);
    this.name = "QmpError";
  }
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Events: "event" ({event, data, timestamp}), "close". */
export class QmpClient extends EventEmitter {
  private buf = "";
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private greeting: ((g: unknown) => void) | null = null;
  private closed = false;
  /** QEMU's version as the greeting told it. */
  version: { major: number; minor: number; micro: number } | null = null;

  private constructor(private readonly sock: net.Socket) {
    super();
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => this.onData(d));
    sock.on("error", () => {});
    sock.on("close", () => this.onClose());
  }

  /** Connects, reads the greeting and negotiates capabilities, all within timeoutMs. */
  static async connect(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const sock = net.createConnection({ path });
    const c = new QmpClient(sock);
    const timer = setTimeout(() => c.close(new Error(`QMP ${path}: no greeting within ${timeoutMs} ms`)), timeoutMs);
    try {
      const greet = await new Promise<unknown>((resolve, reject) => {
        c.greeting = resolve;
        sock.once("error", (e) => reject(new Error(`QMP ${path}: ${e.message}`)));
        c.once("close", (e?: Error) => reject(e ?? new Error(`QMP ${path}: closed before the greeting`)));
      });
      const v = (greet as { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number } } } }).QMP?.version?.qemu;
      c.version = v ?? null;
      await c.execute("qmp_capabilities", undefined, timeoutMs);
      return c;
    } catch (e) {
      c.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private onData(d: string): void {
    this.buf += d;
    if (this.buf.length > 1 << 20) return this.close(new Error("QMP: line longer than 1 MiB"));
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        return this.close(new Error(`QMP: not JSON: ${line.slice(0, 200)}`));
      }
      this.dispatch(msg);
    }
  }

  private dispatch(msg: Record<string, unknown>): void {
    if ("QMP" in msg) {
      this.greeting?.(msg);
      this.greeting = null;
      return;
    }
    if (typeof msg.event === "string") {
      this.emit("event", msg);
      return;
    }
    const id = String(msg.id ?? "");
    const p = this.pending.get(id);
    if (!p) return; // a reply nobody waits for (its call timed out)
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ("error" in msg) {
      const e = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(e.desc ?? "QMP error", e.class ?? "GenericError"));
    } else p.resolve(msg.return);
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP ${command}: connection closed`));
    const id = `shimlab-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + "\n");
    });
  }

  /**
   * QMP's getfd: QEMU keeps fd under name, for a later command to use (netdev_add's fd=). The
   * descriptor rides with the command's own bytes (SCM_RIGHTS), which a net.Socket cannot send:
   * sendWithFd (the addon's) writes them on the socket's descriptor, with nothing else queued.
   */
  getfd(name: string, fd: number, sendWithFd: (socketFd: number, data: Buffer, fd: number) => void, timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.reject(new Error("QMP getfd: connection closed"));
    const sockFd = (this.sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof sockFd !== "number" || sockFd < 0) return Promise.reject(new Error("QMP getfd: the socket has no descriptor"));
    if (this.sock.writableLength > 0) return Promise.reject(new Error("QMP getfd: other writes are still queued"));
    const id = `shimlab-${this.nextId++}`;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP getfd: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: () => resolve(), reject, timer });
      try {
        sendWithFd(sockFd, Buffer.from(JSON.stringify({ execute: "getfd", arguments: { fdname: name }, id }) + "\n"), fd);
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new Error(`QMP getfd: ${(e as Error).message}`));
      }
    });
  }

  async queryStatus(timeoutMs?: number): Promise<{ status: string; running: boolean }> {
    return this.execute("query-status", undefined, timeoutMs);
  }

  /** Asks QEMU to exit; resolves when it acknowledged (the socket closes after). */
  async quit(timeoutMs?: number): Promise<void> {
    await this.execute("quit", undefined, timeoutMs);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.destroy();
    this.failAll(err ?? new Error("QMP connection closed"));
    this.emit("close", err);
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new Error("QMP connection closed by QEMU"));
    this.emit("close");
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }
}
