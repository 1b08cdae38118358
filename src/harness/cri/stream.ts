// CRI streaming Exec and Attach, as kubectl exec/attach and crictl reach a
// container: RuntimeService.Exec/Attach return a URL on containerd's streaming
// server, which speaks k8s remotecommand over a WebSocket with the
// "v4.channel.k8s.io" subprotocol. Each binary message starts with its channel:
// 0 stdin, 1 stdout, 2 stderr, 3 the final status (a metav1.Status as JSON),
// 4 terminal resize ({"Width","Height"}). v4 has no way to close stdin alone:
// the stream ends when the process does.
import { EventEmitter } from "node:events";
import { WebSocket } from "./websocket";

export const CHANNEL_PROTOCOL = "v4.channel.k8s.io";
const CH = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4 } as const;

export interface StreamResult {
  /** The process's exit code; null when the server reported something other than an exit. */
  exitCode: number | null;
  /** The server's metav1.Status, as sent on the error channel (null if it sent none). */
  status: { status?: string; reason?: string; message?: string; details?: { causes?: { reason?: string; message?: string }[] } } | null;
}

/** Exit code from the v4 status: Success is 0, NonZeroExitCode carries it in details.causes. */
export function exitCodeOf(status: StreamResult["status"]): number | null {
  if (!status) return null;
  if (status.status === "Success") return 0;
  if (status.reason === "NonZeroExitCode") {
    const c = status.details?.causes?.find((x) => x.reason === "ExitCode");
    const n = Number(c?.message);
    if (Number.isInteger(n)) return n;
  }
  return null;
}

export declare interface CriStream {
  on(e: "stdout" | "stderr", f: (d: Buffer) => void): this;
}

export class CriStream extends EventEmitter {
  /** Settles when the server closes the stream. */
  readonly done: Promise<StreamResult>;

  private constructor(private readonly ws: WebSocket) {
    super();
    let status: StreamResult["status"] = null;
    let errText = "";
    this.done = new Promise((resolve, reject) => {
      ws.on("message", (m) => {
        if (!m.binary || m.data.length === 0) return;
        const body = m.data.subarray(1);
        if (!body.length) return; // the server opens each channel with an empty message
        switch (m.data[0]) {
          case CH.stdout:
            this.emit("stdout", body);
            break;
          case CH.stderr:
            this.emit("stderr", body);
            break;
          case CH.error:
            errText += body.toString("utf8");
            try {
              status = JSON.parse(errText);
            } catch {
              /* more to come, or not JSON */
            }
            break;
        }
      });
      ws.on("error", () => {}); // its close follows
      ws.on("close", (code, reason) => {
        if (!status && errText) return reject(new Error(`stream error: ${errText.trim()}`));
        if (!status && code !== 1000) return reject(new Error(`stream closed (${code}${reason ? `: ${reason}` : ""}) before the process ended`));
        resolve({ exitCode: exitCodeOf(status), status });
      });
    });
  }

  /** Connects to the URL that Exec or Attach returned. */
  static async open(url: string, o: { timeoutMs?: number } = {}): Promise<CriStream> {
    return new CriStream(await WebSocket.connect(url, [CHANNEL_PROTOCOL], o));
  }

  write(data: Buffer | string): void {
    const b = typeof data === "string" ? Buffer.from(data) : data;
    this.ws.send(Buffer.concat([Buffer.of(CH.stdin), b]));
  }

  resize(width: number, height: number): void {
    this.ws.send(Buffer.concat([Buffer.of(CH.resize), Buffer.from(JSON.stringify({ Width: width, Height: height }))]));
  }

  /** Ends the stream from this side (the process is left running, as when kubectl detaches). */
  close(): void {
    this.ws.close();
  }
}
