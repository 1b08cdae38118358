// A container's init or exec process as the shim sees it: its state, its
// stdio pumped between the client's streams and the agent, and its exit.
import type { Readable, Writable } from "node:stream";
import type { AgentApi } from "../agent/client";
import type { Logger } from "../util/logger";
import type { OciProcess } from "../oci/spec";
import { StateMachine, type ProcessStatus } from "./state";

export interface ProcessIO {
  stdin: Readable | null;
  stdout: Writable | null;
  stderr: Writable | null;
  /** Settles when the streams can take output (a binary:// logger said it is ready); absent: at once. */
  ready?: Promise<void>;
  /** Releases the shim's handles on the client's streams. */
  close(): void;
}

export const NULL_IO: ProcessIO = { stdin: null, stdout: null, stderr: null, close() {} };

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export interface ExitInfo {
  status: number;
  exitedAt: Date;
}

/** Read size per ReadStdout/ReadStderr, as Kata's shim uses. */
const READ_LEN = 32 << 10;
/**
 * How long output may wait for a client that does not read before the exit
 * is waited for anyway: a fifo nobody opens must not hide an exit forever.
 */
export const CLIENT_STALL_MS = 3_000;
/** Exit status when the agent cannot tell (it died, or WaitProcess failed), as Kata reports since #4419. */
export const UNKNOWN_EXIT = 255;

export class Process {
  readonly state: StateMachine;
  pid = 0;
  exit: ExitInfo | null = null;
  /** An exec's OCI process, sent to the agent when it starts. */
  spec: OciProcess | null = null;
  private io: ProcessIO;
  private readonly exitWaiters: ((e: ExitInfo) => void)[] = [];
  private stdinDone: Promise<void> = Promise.resolve();
  private stdinClosedByClient = false;
  private ioStarted = false;
  /** Set while the process runs: called once with its exit. */
  onExit: ((p: Process) => void) | null = null;

  constructor(
    readonly containerId: string,
    /** "" for the init process. */
    readonly execId: string,
    readonly stdio: StdioPaths,
    io: ProcessIO,
    private readonly log: Logger,
  ) {
    this.state = new StateMachine(execId || containerId);
    this.io = io;
  }

  /** The id containerd uses: the exec id, or the container id for init. */
  get id(): string {
    return this.execId || this.containerId;
  }

  get isInit(): boolean {
    return this.execId === "";
  }

  get status(): ProcessStatus {
    return this.state.status;
  }

  wait(): Promise<ExitInfo> {
    if (this.exit) return Promise.resolve(this.exit);
    return new Promise((r) => this.exitWaiters.push(r));
  }

  /**
   * Pumps stdio between the client and the agent, then waits for the process:
   * output first (Kata waits for EOF before WaitProcess, so nothing is lost),
   * then WaitProcess, which reaps it in the agent.
   */
  beginIo(agent: AgentApi, agentExecId: string): void {
    if (this.ioStarted) return;
    this.ioStarted = true;
    const ids = { containerId: this.containerId, execId: agentExecId };
    let stalled!: () => void;
    const clientStalled = new Promise<void>((r) => (stalled = r));
    const pumps = [this.pumpOut(agent, "ReadStdout", ids, this.io.stdout, stalled)];
    if (!this.stdio.terminal) pumps.push(this.pumpOut(agent, "ReadStderr", ids, this.io.stderr, stalled));
    if (this.io.stdin) this.stdinDone = this.pumpIn(agent, ids, this.io.stdin);
    // Output first; but a client that stopped reading only delays the wait, it
    // cannot stop it (the pumps go on, and end when the exit closes our ends).
    Promise.race([Promise.all(pumps), clientStalled])
      .then(() => agent.WaitProcess(ids))
      .then(
        (r) => this.setExited(r.status),
        (e: Error) => {
          this.log.warn("WaitProcess failed; reporting exit 255", { process: this.id, error: e.message });
          this.setExited(UNKNOWN_EXIT);
        },
      );
  }

  private async pumpOut(
    agent: AgentApi,
    method: "ReadStdout" | "ReadStderr",
    ids: { containerId: string; execId: string },
    out: Writable | null,
    onStall: () => void,
  ): Promise<void> {
    for (;;) {
      let data: Buffer;
      try {
        data = (await agent[method]({ ...ids, len: READ_LEN })).data;
      } catch (e) {
        this.log.debug(`${method} ended`, { process: this.id, error: (e as Error).message });
        return;
      }
      if (data.length === 0) return; // end of stream
      if (out && !out.destroyed && !out.writableEnded) {
        if (!out.write(data)) await new Promise<void>((r) => {
          const stall = setTimeout(onStall, CLIENT_STALL_MS);
          const done = () => {
            clearTimeout(stall);
            out.removeListener("drain", done);
            out.removeListener("close", done);
            out.removeListener("error", done);
            r();
          };
          out.once("drain", done);
          out.once("close", done);
          out.once("error", done);
        });
      }
    }
  }

  private async pumpIn(agent: AgentApi, ids: { containerId: string; execId: string }, input: Readable): Promise<void> {
    try {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        if (this.exit) return;
        await agent.WriteStdin({ ...ids, data: chunk });
      }
    } catch (e) {
      this.log.debug("stdin copy stopped", { process: this.id, error: (e as Error).message });
      return;
    }
    // The client closed stdin (all writers gone, or CloseIO): tell the process.
    if (!this.exit) await agent.CloseStdin(ids).catch(() => {});
  }

  /** CloseIO{stdin}: the client will write no more; EOF reaches the process once its writers are gone. */
  async closeStdin(agent: AgentApi, agentExecId: string): Promise<void> {
    if (this.stdinClosedByClient) return;
    this.stdinClosedByClient = true;
    const s = this.io.stdin as (Readable & { closeWriter?: () => void }) | null;
    if (s?.closeWriter) {
      s.closeWriter();
      await this.stdinDone;
    } else {
      await agent.CloseStdin({ containerId: this.containerId, execId: agentExecId }).catch(() => {});
    }
  }

  setExited(status: number): void {
    if (this.exit) return;
    // State first, then waiters: Wait must never return while State still says running (kata runtime#1600).
    if (this.state.status !== "deleted") this.state.transition("exit");
    this.exit = { status, exitedAt: new Date() };
    this.log.info("process exited", { process: this.id, status });
    for (const w of this.exitWaiters.splice(0)) w(this.exit);
    const cb = this.onExit;
    this.onExit = null;
    cb?.(this);
    this.closeIo();
  }

  closeIo(): void {
    try {
      this.io.close();
    } catch {
      /* already closed */
    }
  }
}
