// A scenario's `shimlab factory`: the real one (bin/shimlab factory run, a
// process of its own so that a scenario can kill it), in the world's
// directory, with its agents' containers under the world's cgroup parent,
// pooling what the scenario's shim configuration boots (agents or QEMU VMs).
// The shim reaches it through a proxy on the factory's socket, where the
// factory-link fault acts: "die-mid-handout" lets a take through, and when the
// factory's answer comes back (the agent adopted, out of the pool, its record
// gone), kills the factory and hangs up instead of forwarding it — the worst
// moment for a factory to die.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { REPO_ROOT } from "../harness/containerd";
import { factoryStatus, untilFactoryReady } from "../hypervisor/factory/client";

export type FactoryLinkFault = "die-mid-handout" | "die-mid-daemon-handout" | null;

export class ScenarioFactory {
  readonly dir: string;
  readonly realSocket: string;
  /** What the shim's configuration names: the proxy. */
  readonly socket: string;
  fault: FactoryLinkFault = null;
  /** The shim's configuration, for the factory to pool what its driver boots (host agents, or QEMU VMs). */
  config: { file: string; qemu: boolean } | null = null;
  private proc: ChildProcess | null = null;
  private proxy: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();
  /** Told what the fault did, for the scenario's fault timeline. */
  onFault: (what: string) => void = () => {};

  constructor(
    worldDir: string,
    private readonly size: number,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.dir = path.join(worldDir, "f");
    this.realSocket = path.join(this.dir, "factory.sock");
    this.socket = path.join(this.dir, "p.sock");
  }

  async start(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const log = fs.openSync(path.join(this.dir, "factory.log"), "a");
    const args = [path.join(REPO_ROOT, "bin", "shimlab"), "factory", "run", "--dir", this.dir, "--socket", this.realSocket, "--size", String(this.size)];
    if (this.config) args.push("--config", this.config.file);
    this.proc = spawn(process.execPath, args, { env: { ...process.env, ...this.env }, stdio: ["ignore", log, log] });
    fs.closeSync(log);
    const p = this.proc;
    // a VM under TCG boots in seconds, more on a loaded machine
    if (!(await untilFactoryReady(this.realSocket, { timeoutMs: this.config?.qemu ? 180_000 : 20_000, gone: () => p.exitCode !== null }))) throw new Error(`the scenario's factory did not fill its pool; log ${path.join(this.dir, "factory.log")}`);
    this.proxy = net.createServer((c) => this.relay(c));
    await new Promise<void>((resolve) => this.proxy!.listen(this.socket, resolve));
  }

  private relay(client: net.Socket): void {
    const up = net.createConnection({ path: this.realSocket });
    this.conns.add(client);
    this.conns.add(up);
    let request = "";
    let take = false;
    let daemon = false;
    const done = () => {
      client.destroy();
      up.destroy();
      this.conns.delete(client);
      this.conns.delete(up);
    };
    client.on("data", (d) => {
      request += d.toString("utf8");
      take ||= /"op"\s*:\s*"take"/.test(request);
      daemon ||= /"op"\s*:\s*"daemon"/.test(request);
      up.write(d);
    });
    up.on("data", (d) => {
      if ((take && this.fault === "die-mid-handout") || (daemon && this.fault === "die-mid-daemon-handout")) {
        const answer = d.toString("utf8").trim();
        const pid = /"pid":(\d+)/.exec(answer)?.[1];
        if (take) this.onFault(`factory killed, its answer to a take in flight${pid ? ` (agent ${pid} adopted, never told)` : ` (${answer.slice(0, 80)})`}`);
        else this.onFault(`factory killed, its answer to a start's request for a parked daemon in flight${pid ? ` (daemon ${pid} handed out, never claimed)` : ` (${answer.slice(0, 80)})`}`);
        this.kill("SIGKILL");
        done();
        return;
      }
      client.write(d);
    });
    client.on("end", () => up.end());
    up.on("end", () => client.end());
    client.on("error", done);
    up.on("error", done);
    client.on("close", done);
    up.on("close", () => {
      if (!client.writableEnded) client.end();
    });
  }

  /** The factory's pid while it runs. */
  pids(): number[] {
    const p = this.proc;
    return p?.pid && p.exitCode === null && p.signalCode === null ? [p.pid] : [];
  }

  /** Its pooled agents (a QEMU pool's: its VMs), the next to be handed out first, as the factory itself tells them. */
  async warmAgents(): Promise<number[]> {
    if (!this.pids().length) return [];
    return (await factoryStatus(this.realSocket, 2_000).catch(() => null))?.warm ?? [];
  }

  kill(sig: NodeJS.Signals): void {
    for (const pid of this.pids()) process.kill(pid, sig);
  }

  /** Stops the factory (its pooled agents with it) and the proxy; agents it handed out are their shims'. */
  async stop(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await new Promise<void>((r) => (this.proxy ? this.proxy.close(() => r()) : r()));
    this.proxy = null;
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const gone = new Promise<void>((r) => p.once("exit", () => r()));
      p.kill("SIGTERM");
      const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
      await gone;
      clearTimeout(t);
    }
  }
}
