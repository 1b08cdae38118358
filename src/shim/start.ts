// `start`: decide the socket, make sure a daemon serves it, print its address.
//
// containerd reads stdout and stderr together and takes the whole output as
// the address, and waits for EOF on that pipe: so nothing but the address is
// printed, and the daemon never inherits our stdout or stderr.
import fs from "node:fs";
import path from "node:path";
import type { ShimFlags } from "./flags";
import { daemonArgs } from "./flags";
import { waitStopped } from "./stopping";
import { socketAddress, socketPath, socketDir } from "./address";
import { validateId } from "./identifiers";
import { placement } from "../pod/container-type";
import { isSandboxBundle, readBundleSpec } from "./bundle";
import { native } from "../native";
import { readStdin } from "./stdin";

/** What containerd 2.x settles at start; absent for 1.6-style runs. */
export interface StartOptions {
  /** Where the socket goes (BootstrapParams.socket_dir). */
  socketDir?: string;
  /** Environment for the daemon on top of ours (its protocol, containerd's addresses). */
  daemonEnv?: NodeJS.ProcessEnv;
  /** A sandbox's shim (containerd 2.x's Sandbox API): the bundle has no config.json. */
  sandbox?: boolean;
}
import { inBundle } from "../util/entry";
import { writeFileAtomic } from "../util/atomic-file";

/** daemonScript: what to launch as the daemon, when another binary (src/fp-shim) runs this start. */
export function start(flags: ShimFlags, daemonScript?: string): void {
  let answer: (address: string) => Buffer | string = (a) => a;
  let opts: StartOptions = {};
  try {
    const input = readStdin();
    // containerd 2.x's shim sandbox controller makes the bundle without a spec. 1.x (no
    // MAX_SHIM_VERSION) never does: there a missing config.json stays the error it is.
    const sandbox = !!process.env.MAX_SHIM_VERSION && isSandboxBundle(process.cwd());
    // containerd 2.x only: 1.6 sends nothing (or an options Any) and no protocol is asked.
    if (input.length || process.env.SHIMLAB_SHIM_PROTOCOL || sandbox) ({ answer, opts } = (require("./start-v2") as typeof import("./start-v2")).bootstrap(flags, input, process.cwd(), process.env, sandbox));
  } catch (err) {
    process.stderr.write(`shimlab start: ${(err as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  startShim(flags, process.cwd(), opts, daemonScript).then(
    (address) => {
      // fd 1 directly: process.stdout on containerd's pipe would load net and
      // the stream machinery just to write one line. Then out at once: the
      // daemon we just launched shares the CPU with us and waits on nothing
      // of ours (the socket already listens), so Node's teardown only delays
      // containerd. "exit" handlers still run.
      writeAll(1, answer(address));
      process.exit(0);
    },
    (err: Error) => {
      process.stderr.write(`shimlab start: ${err.message}\n`);
      process.exitCode = 1;
    },
  );
}

export async function startShim(flags: ShimFlags, bundle = process.cwd(), opts: StartOptions = {}, daemonScript?: string): Promise<string> {
  validateId("namespace", flags.namespace);
  validateId("id", flags.id);
  // A sandbox's shim learns the pod in CreateSandbox; a task's bundle says where it belongs.
  const where = opts.sandbox ? ({ type: "pod_sandbox", sandboxId: flags.id } as const) : placement(flags.id, readBundleSpec(bundle).annotations);
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
    // Before the serving check: a shim still stopping the sandbox this id had serves until it exits;
    // one killed on the way left the rest of that sandbox, which goes before this one takes its run dir.
    if (await waitStopped(sockPath)) {
      const { reapSandbox } = require("./delete") as typeof import("./delete");
      const { sandboxRunDir, readVmRecord } = require("../hypervisor/rundir") as typeof import("../hypervisor/rundir");
      const runDir = sandboxRunDir(flags.namespace, where.sandboxId);
      // start prints the address and nothing else: what the reap could not undo, the next delete tries again
      await reapSandbox(runDir, readVmRecord(runDir), where.sandboxId, sockPath, () => {});
    }
    if (await isServing(sockPath)) {
      // A live shim for this group already: reuse it, as runc's shim does.
      writeAddress(bundle, address);
      return address;
    }
    fs.rmSync(sockPath, { force: true });
    fd = listen(sockPath);
  }
  fs.chmodSync(sockPath, 0o600);

  let logFd = -1;
  try {
    // containerd opened this fifo O_RDWR before running us, so this open cannot block.
    logFd = fs.openSync(path.join(bundle, "log"), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch {
    logFd = -1;
  }
  // Before the launch, not after: from then on the daemon competes for the CPU.
  writeAddress(bundle, address);
  const env = { ...process.env, ...opts.daemonEnv };
  delete env.NODE_EXTRA_CA_CERTS;
  // The daemon serves ttrpc unless containerd 2.x's bootstrap chose otherwise above.
  if (!opts.daemonEnv) delete env.SHIMLAB_DAEMON_PROTOCOL;
  const script = daemonScript ?? (inBundle ? path.join(__dirname, "shim-main.js") : require.resolve("./main"));
  const dargs = daemonArgs({ ...flags, socket: sockPath });
  const args = [process.execPath, ...process.execArgv, script, ...dargs];
  const envList: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) envList.push(`${k}=${v}`);
  let pid = 0;
  try {
    // A factory's parked daemon (src/shim/park.ts), when the configuration enables one: the
    // production daemon only (not another binary's), from the bundle a parked one runs, as a
    // daemon spawned with no Node flags of ours would be.
    if (!daemonScript && inBundle && !process.execArgv.length && env.SHIMLAB_CONFIG) {
      const parked = await (require("./start-parked") as typeof import("./start-parked")).parkedDaemon({ env, script, cwd: bundle, args: dargs, listenFd: fd, logFd });
      pid = parked.pid;
    }
    // posix_spawn (vfork) rather than child_process: no fork of our page tables,
    // and child_process and its stream machinery are never loaded. A new
    // session, stdin and stdout /dev/null, stderr the log fifo, fd 3 the socket.
    if (!pid) pid = native().spawnDetached(process.execPath, args, envList, bundle, [-1, -1, logFd, fd]);
  } catch (e) {
    fs.rmSync(path.join(bundle, "address"), { force: true });
    throw e;
  } finally {
    if (logFd >= 0) fs.closeSync(logFd);
  }
  writeFileAtomic(path.join(bundle, "shim.pid"), String(pid));
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

/** Writes all of data to fd synchronously (a pipe may take it in pieces). */
export function writeAll(fd: number, data: Buffer | string): void {
  const buf = typeof data === "string" ? Buffer.from(data) : data;
  for (let off = 0; off < buf.length; ) {
    try {
      off += fs.writeSync(fd, buf, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
    }
  }
}

export function writeAddress(bundle: string, address: string): void {
  writeFileAtomic(path.join(bundle, "address"), address);
}
