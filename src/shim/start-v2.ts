// `start` for containerd 2.x: read the bootstrap parameters, choose how the
// daemon serves (ttrpc, or gRPC when asked), and answer with a bootstrap
// result containerd 2.x reads. Loaded only when stdin holds something or a
// protocol is asked for, so 1.6's `start` never pays for it.
import fs from "node:fs";
import path from "node:path";
import type { ShimFlags } from "./flags";
import type { StartOptions } from "./start";
import { DAEMON_PROTOCOL_ENV, answerFor, formatResult, parseStartInput, protocolFrom, wantsDebug } from "./bootstrap";
import { Any } from "../gen/google.protobuf";
import { Options as RuntimeOptions } from "../gen/runtimeoptions.v1";
import { validateId } from "./identifiers";

/** Where `delete` finds a socket dir other than the default, as containerd's shim library keeps it. */
export const SOCKET_DIR_LINK = "s";

export function bootstrap(flags: ShimFlags, input: Buffer, bundle = process.cwd(), env = process.env, sandbox = false): { answer: (address: string) => Buffer; opts: StartOptions } {
  validateId("namespace", flags.namespace);
  validateId("id", flags.id);
  const parsed = parseStartInput(input, flags.id, flags.namespace);
  let a = answerFor(parsed, protocolFrom(env), env);
  const opts: StartOptions = { daemonEnv: {}, sandbox };
  const daemonEnv = opts.daemonEnv!;
  if (sandbox) {
    // containerd joins a pod's tasks to its sandbox's shim only for a version 3 shim, and
    // otherwise runs `start` for each one: a sandbox's shim answers version 3 whatever it was asked.
    if (a.encoding === "plain") a = { encoding: "json", protocol: a.protocol };
  }
  // The runtime's options (ConfigPath): a sandbox's come only here (no Create carries them); a
  // task's Create brings them again, but the daemon boots its agent before that Create, by this
  // config (its factory, its driver), and native/oneshot.c does the same.
  const configPath = runtimeConfigPath(input);
  if (configPath) daemonEnv.SHIMLAB_CONFIG = configPath;
  // Only the daemon `start` launches should read this; never pass ours on.
  daemonEnv[DAEMON_PROTOCOL_ENV] = a.protocol;
  const p = parsed.params;
  if (p) {
    if (p.socketDir) {
      if (!path.isAbsolute(p.socketDir)) throw new Error(`bootstrap socket_dir ${JSON.stringify(p.socketDir)} is not an absolute path`);
      opts.socketDir = p.socketDir;
      linkSocketDir(bundle, p.socketDir);
    }
    // containerd 2.3 still sets these in the environment; the params win when both are there.
    if (p.containerdTtrpcAddress) daemonEnv.TTRPC_ADDRESS = p.containerdTtrpcAddress.replace(/^unix:\/\//, "");
    if (p.containerdGrpcAddress && !flags.address) flags.address = p.containerdGrpcAddress.replace(/^unix:\/\//, "");
    if (wantsDebug(p)) flags.debug = true;
  }
  return { answer: (address) => formatResult(address, a), opts };
}

/** The ConfigPath of a runtimeoptions.v1.Options Any on stdin (what CRI sends for a non-runc handler), if that is what stdin holds. */
export function runtimeConfigPath(input: Buffer): string | undefined {
  if (!input.length) return undefined;
  try {
    const any = Any.decode(input);
    if (any.typeUrl !== RuntimeOptions.typeName && any.typeUrl !== `type.googleapis.com/${RuntimeOptions.typeName}`) return undefined;
    return RuntimeOptions.decode(any.value).configPath || undefined;
  } catch {
    return undefined;
  }
}

function linkSocketDir(bundle: string, dir: string): void {
  const link = path.join(bundle, SOCKET_DIR_LINK);
  fs.rmSync(link, { force: true });
  fs.symlinkSync(dir, link);
}

/** The socket dir `start` recorded in the bundle, if any. */
export function recordedSocketDir(bundle: string): string | undefined {
  const link = path.join(bundle, SOCKET_DIR_LINK);
  // absent for containerd 1.6: ask without an ENOENT thrown (and its stack captured) on every delete
  if (!fs.lstatSync(link, { throwIfNoEntry: false })) return undefined;
  try {
    return fs.readlinkSync(link);
  } catch {
    return undefined;
  }
}
