// A private image registry: Debian's docker-registry (the distribution
// registry, the one Docker Hub and registry.k8s.io speak) on a free loopback
// port, its config and storage in a directory of its own, no auth, no TLS.
// Tests that pull "public" images point containerd's registry mirrors here.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { which } from "../../util/which";

export interface Registry {
  /** "127.0.0.1:PORT" */
  host: string;
  url: string;
  dir: string;
  pid: number;
  logTail(lines?: number): string;
  /** Stops the registry and removes its directory. */
  stop(): Promise<void>;
}

export function registryBinary(): string | null {
  return which("docker-registry");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function config(storage: string, host: string): string {
  return [
    "version: 0.1",
    "log:",
    "  level: warn",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${storage}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${host}`,
    "",
  ].join("\n");
}

async function answers(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
    return r.status === 200;
  } catch {
    return false;
  }
}

export async function startRegistry(o: { dir?: string } = {}): Promise<Registry> {
  const bin = registryBinary();
  if (!bin) throw new Error("docker-registry not found: apt-get install docker-registry");
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-registry-"));
  const storage = path.join(dir, "storage");
  fs.mkdirSync(storage, { recursive: true });
  const logPath = path.join(dir, "registry.log");
  const logTail = (lines = 30) => {
    try {
      return fs.readFileSync(logPath, "utf8").trim().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  };
  // The port is free when asked, and may be taken before the registry binds
  // it (others share the machine): then the registry exits and we try another.
  for (let attempt = 1; ; attempt++) {
    const host = `127.0.0.1:${await freePort()}`;
    const url = `http://${host}`;
    const cfg = path.join(dir, "config.yml");
    fs.writeFileSync(cfg, config(storage, host));
    const log = fs.openSync(logPath, "a");
    const proc: ChildProcess = spawn(bin, ["serve", cfg], { stdio: ["ignore", log, log], detached: true });
    fs.closeSync(log);
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    const deadline = Date.now() + 15_000;
    let up = false;
    while (!up && proc.exitCode === null && proc.signalCode === null && Date.now() < deadline) {
      up = await answers(url);
      if (!up) await new Promise((r) => setTimeout(r, 50));
    }
    if (up) {
      return {
        host,
        url,
        dir,
        pid: proc.pid!,
        logTail,
        stop: async () => {
          if (proc.exitCode === null && proc.signalCode === null) {
            proc.kill("SIGTERM");
            const t = setTimeout(() => proc.kill("SIGKILL"), 5_000);
            await exited;
            clearTimeout(t);
          }
          if (!o.dir) fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    proc.kill("SIGKILL");
    await exited;
    if (attempt >= 3) {
      const err = new Error(`docker-registry did not answer on ${url} (attempt ${attempt}); log:\n${logTail()}`);
      if (!o.dir) fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }
}
