// `start`: decide the socket, make sure a daemon serves it, print its address.
//
// containerd reads stdout and stderr together and takes the whole output as
// the address, and waits for EOF on that pipe: so nothing but the address is
// printed, and the daemon never inherits our stdout or stderr.
import fs from "node:fs";
import path from "node:path";
import type { ShimFlags } from "./flags";
import { daemonArgs } from "./flags";
import { socketAddress, socketPath, socketDir } from "./address";
import { validateId } from "./identifiers";
import { placement } from "../pod/container-type";
import { readBundleSpec } from "./bundle";
import { native } from "../native";
import { readStdin } from "./stdin";

/** What containerd 2.x settles at start; absent for 1.6-style runs. */
export interface StartOptions {
  /** Where the socket goes (BootstrapParams.socket_dir). */
  socketDir?: string;
  /** Environment for the daemon on top of ours (its protocol, containerd's addresses). */
  daemonEnv?: NodeJS.ProcessEnv;
}
import { inBundle } from "../util/entry";

export function start(flags: ShimFlags): void {
  let answer: (address: string) => Buffer | string = (a) => a;
  let opts: StartOptions = {};
  try {
    const input = readStdin();
    // containerd 2.x only: 1.6 sends nothing (or an options Any) and no protocol is asked.
    if (input.length || process.env.SHIMLAB_SHIM_PROTOCOL) ({ answer, opts } = (require("./start-v2") as typeof import("./start-v2")).bootstrap(flags, input));
  } catch (err) {
    process.stderr.write(`shimlab start: ${(err as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  startShim(flags, process.cwd(), opts).then(
    (address) => {
      process.stdout.write(answer(address));
      process.exitCode = 0;
    },
    (err: Error) => {
      process.stderr.write(`shimlab start: ${err.message}\n`);
      process.exitCode = 1;
    },
  );
}

export async function startShim(flags: ShimFlags, bundle = process.cwd(), opts: StartOptions = {}): Promise<string> {
  validateId("namespace", flags.namespace);
  validateId("id", flags.id);
  const spec = readBundleSpec(bundle);
  const where = placement(flags.id, spec.annotations);
  validateId("sandbox id", where.sandboxId);
  const address = socketAddress(flags.address, flags.namespace, where.sandboxId, opts.socketDir);

  if (where.type === "pod_container") {
    // Join the pod: its shim already listens on the sandbox's socket.
    if (!(await isServing(socketPath(address)))) {
      throw new Error(`no shim serves sandbox ${where.sandboxId} (socket ${socketPath(address)} does not answer); create the sandbox first`);
    }
    writeAddress(bundle, address);
    return address;
  }

  const dir = opts.socketDir ?? socketDir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sockPath = socketPath(address);
  let fd: number;
  try {
    fd = listen(sockPath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE") throw e;
    if (await isServing(sockPath)) {
      // A live shim for this group already: reuse it, as runc's shim does.
      writeAddress(bundle, address);
      return address;
    }
    fs.rmSync(sockPath, { force: true });
    fd = listen(sockPath);
  }
  fs.chmodSync(sockPath, 0o600);

  let logFd: number | "ignore" = "ignore";
  try {
    // containerd opened this fifo O_RDWR before running us, so this open cannot block.
    logFd = fs.openSync(path.join(bundle, "log"), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch {
    logFd = "ignore";
  }
  const env = { ...process.env, ...opts.daemonEnv };
  delete env.NODE_EXTRA_CA_CERTS;
  // The daemon serves ttrpc unless containerd 2.x's bootstrap chose otherwise above.
  if (!opts.daemonEnv) delete env.SHIMLAB_DAEMON_PROTOCOL;
  // loaded here: `delete` imports this file for isServing and never spawns
  const { spawn } = require("node:child_process") as typeof import("node:child_process");
  const child = spawn(process.execPath, [...process.execArgv, inBundle ? path.join(__dirname, "shim-main.js") : require.resolve("./main"), ...daemonArgs({ ...flags, socket: sockPath })], {
    cwd: bundle,
    detached: true,
    stdio: ["ignore", "ignore", logFd, fd],
    env,
  });
  child.unref();
  if (typeof logFd === "number") fs.closeSync(logFd);
  if (!child.pid) throw new Error("could not launch the shim daemon");
  writeAtomic(path.join(bundle, "shim.pid"), String(child.pid));
  writeAddress(bundle, address);
  // The daemon has its own copy of the listening socket now.
  fs.closeSync(fd);
  return address;
}

/** Binds outside libuv: a libuv pipe handle unlinks its path when it closes, i.e. when we exit. */
function listen(p: string): number {
  return native().listenUnix(p, 512);
}

/** Whether something accepts connections on the socket within 100 ms, as containerd's shim library checks. */
export function isServing(p: string, timeoutMs = 100): Promise<boolean> {
  // no socket file, no server: spares loading net on the usual `delete`
  if (!fs.existsSync(p)) return Promise.resolve(false);
  const net = require("node:net") as typeof import("node:net");
  return new Promise((resolve) => {
    const c = net.createConnection({ path: p });
    const t = setTimeout(() => {
      c.destroy();
      resolve(false);
    }, timeoutMs);
    c.once("connect", () => {
      clearTimeout(t);
      c.destroy();
      resolve(true);
    });
    c.once("error", () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export function writeAddress(bundle: string, address: string): void {
  writeAtomic(path.join(bundle, "address"), address);
}

function writeAtomic(file: string, data: string): void {
  const tmp = path.join(path.dirname(file), "." + path.basename(file));
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
