// containerd's connection to a shim's address. It goes when containerd goes
// down and is dialled again from the address when containerd is back or
// after a broken link, through the emulator's link hook when it has one, so
// that whoever holds the link keeps it across a restart.
import type { ServiceClient, ServiceDef } from "../ttrpc/service";
import { Task } from "../gen/containerd.task.v2";
import { Sandbox as SandboxDef } from "../gen/containerd.runtime.sandbox.v1";

interface Connection {
  close(): void;
  readonly isClosed: boolean;
  service<S extends ServiceDef>(def: S): ServiceClient<S>;
}

export class ShimLink {
  private conn: Connection | null;
  private readonly stubs = new Map<ServiceDef, unknown>();
  /** Not dialled again: the shim was shut down on purpose. */
  retired = false;

  constructor(
    readonly address: string,
    conn: Connection | null,
    private readonly dialer: (address: string) => Promise<Connection>,
    /** The Task service the shim serves: v3 when its `start` said version 3. */
    private readonly taskDef: ServiceDef = Task,
  ) {
    this.conn = conn;
  }

  /** The connection, until containerd drops it (a peer that hung up still counts: calls on it say so). */
  get client(): Connection | null {
    return this.conn;
  }

  service<S extends ServiceDef>(def: S): ServiceClient<S> | undefined {
    if (!this.conn) return undefined;
    let s = this.stubs.get(def) as ServiceClient<S> | undefined;
    if (!s) this.stubs.set(def, (s = this.conn.service(def)));
    return s;
  }

  get task(): ServiceClient<typeof Task> | undefined {
    return this.service(this.taskDef as typeof Task);
  }

  get sandbox(): ServiceClient<typeof SandboxDef> | undefined {
    return this.service(SandboxDef);
  }

  drop(): void {
    this.conn?.close();
    this.conn = null;
    this.stubs.clear();
  }

  async redial(): Promise<void> {
    this.drop();
    this.conn = await this.dialer(this.address);
  }
}
