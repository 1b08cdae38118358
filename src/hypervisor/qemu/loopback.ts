// A VM pod's loopback, brought to the shim. containerd's CRI serves
// PortForward by entering the pod's network namespace and dialling
// localhost:<port> there; in a VM pod nothing listens in that namespace (the
// servers are in the guest), and the shim never sees the PortForward call, so
// it cannot know the port in advance. Instead every loopback TCP connection
// in the namespace is redirected (iptables nat OUTPUT REDIRECT on lo) to one
// socket the shim listens on inside the namespace, and the port the client
// asked for is read back from netfilter (SO_ORIGINAL_DST). The pod layer
// (src/pod/port-relay.ts) carries each connection into the guest.
//
// Why this shape: a listener per port would need the ports up front; a
// process of our own inside the namespace would be one more thing to leak.
// One socket made inside the namespace by a short-lived thread (native addon)
// is served by the shim's own event loop, and dies with the shim. The rule
// outlives a crash, so the VM record names it and `delete` removes it.
import fs from "node:fs";
import net from "node:net";
import { execFile } from "node:child_process";
import { native } from "../../native";
import type { Logger } from "../../util/logger";
import type { LoopbackListener } from "../types";
import { addRedirectCommand, removeRedirectCommand, type LoopbackRecord } from "./loopback-commands";

export { ruleComment, RULE_COMMENT_PREFIX, removeRedirectCommand, type LoopbackRecord } from "./loopback-commands";

function inNetns(netns: string, argv: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("nsenter", [`--net=${netns}`, "--", ...argv], (err, _o, stderr) =>
      err ? reject(new Error(`${argv.join(" ")} in ${netns}: ${(stderr || err.message).trim()}`)) : resolve(),
    ),
  );
}

/** The redirected connection's port as the client asked for it (SO_ORIGINAL_DST), or null. */
function originalPort(sock: net.Socket): number | null {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return null;
  try {
    return native().originalDst(fd).port;
  } catch {
    // No conntrack entry: a connection made straight to the relay's port, which is then the port meant.
    return sock.localPort ?? null;
  }
}

export class PodLoopback implements LoopbackListener {
  private handler: ((sock: net.Socket, port: number) => void) | null = null;
  private redirected = false;
  private closing: Promise<void> | null = null;

  private constructor(
    readonly netns: string,
    readonly record: LoopbackRecord,
    private readonly server: net.Server,
    /**
     * The namespace, held open: containerd's CRI may remove its path (StopPodSandbox tears the
     * network down while the VM's teardown is still to come), and the rule must still be found.
     */
    private readonly nsFd: number,
    private readonly logger: Logger,
  ) {
    server.on("connection", (sock: net.Socket) => {
      sock.on("error", () => {}); // the relay adds its own; an early reset must not throw
      const port = originalPort(sock);
      if (!this.handler || port === null) {
        sock.resetAndDestroy();
        return;
      }
      this.handler(sock, port);
    });
    server.on("error", (e) => logger.warn("pod loopback relay socket failed", { error: e.message }));
  }

  /** Listens on 127.0.0.1:<any free port> inside netns; no traffic comes until redirect(). */
  static async listen(netns: string, comment: string, logger: Logger): Promise<PodLoopback> {
    const nsFd = fs.openSync(netns, "r");
    let fd: number;
    try {
      fd = native().listenTcpInNetns(netns, "127.0.0.1", 0, 511);
    } catch (e) {
      fs.closeSync(nsFd);
      throw e;
    }
    // allowHalfOpen: a client's FIN is carried to the guest as one, not answered by closing.
    // pauseOnConnect: nothing is read before the guest's end is dialled.
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ fd }, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      native().closeFd(fd);
      fs.closeSync(nsFd);
      throw e;
    }
    const port = (server.address() as net.AddressInfo).port;
    return new PodLoopback(netns, { port, comment }, server, nsFd, logger);
  }

  /** The namespace through our own fd: valid whatever became of its path. */
  private get nsPath(): string {
    return `/proc/${process.pid}/fd/${this.nsFd}`;
  }

  get port(): number {
    return this.record.port;
  }

  /** Adds the REDIRECT rule: from now on localhost:<any port> in the namespace arrives here. */
  async redirect(): Promise<void> {
    await inNetns(this.nsPath, addRedirectCommand(this.record));
    this.redirected = true;
    this.logger.info("pod loopback redirected to the port-forward relay", { netns: this.netns, relayPort: this.record.port });
  }

  onConnection(handler: (sock: net.Socket, port: number) => void): void {
    this.handler = handler;
  }

  /** Removes the rule first (no new connection finds a closed socket), then stops listening. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.handler = null;
      if (this.redirected) {
        await inNetns(this.nsPath, removeRedirectCommand(this.record)).catch((e) => this.logger.warn("removing the pod loopback redirect failed", { error: (e as Error).message }));
        this.redirected = false;
      }
      // Not awaited to the end: close's callback waits for every accepted connection, which the relay owns.
      this.server.close();
      fs.closeSync(this.nsFd);
    })();
    return this.closing;
  }
}
