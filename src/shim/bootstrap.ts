// containerd 2.x's side of `start`: what it may write on our stdin, and the
// answer it accepts on stdout.
//
// - containerd 1.6/1.7/2.0-2.2 put nothing, or the runtime options Any, on
//   stdin, and take a plain `unix://...` address back (1.7+ also JSON
//   {"version","address","protocol"}; version 3 and gRPC need 2.x).
// - containerd 2.3+ writes a protobuf BootstrapParams on stdin; its own shims
//   answer with a protobuf BootstrapResult. The proto's documentation speaks
//   of JSON, so a JSON BootstrapParams is read too and answered in JSON.
//
// A legacy options Any also decodes as a BootstrapParams (type_url lands in
// instance_id), so params count only when their id and namespace match the
// command line, as containerd's shim library checks.
import { BootstrapParams, BootstrapResult } from "../gen/containerd.runtime.bootstrap.v1";
import { invalidArgument } from "../errdefs";

export type ShimProtocol = "ttrpc" | "grpc";
export type ResultEncoding = "plain" | "json" | "binary";

/** The protocol asked of shimlab for containerd 2.x: `ttrpc` or `grpc`. Unset means "answer as for 1.6". */
export const PROTOCOL_ENV = "SHIMLAB_SHIM_PROTOCOL";
/** What `start` tells the daemon it launches to serve. */
export const DAEMON_PROTOCOL_ENV = "SHIMLAB_DAEMON_PROTOCOL";
/** containerd's task API version that gRPC requires and that 2.x speaks when told. */
export const TASK_API_VERSION = 3;
/** Upstream reads at most this much of stdin. */
const STDIN_LIMIT = 10 << 20;

export interface StartInput {
  /** containerd 2.3+'s parameters, when stdin held them. */
  params: BootstrapParams | null;
  /** How they came: the answer goes back the same way. */
  encoding: "json" | "binary" | null;
}

export function parseStartInput(input: Buffer, id: string, namespace: string): StartInput {
  if (input.length > STDIN_LIMIT) throw invalidArgument(`start: stdin holds ${input.length} bytes, over the ${STDIN_LIMIT}-byte limit`);
  const text = input.subarray(0, 64).toString("latin1").trimStart();
  if (!input.length) return { params: null, encoding: null };
  if (text.startsWith("{")) {
    // 0x7b is a protobuf group tag no message here uses: JSON is unambiguous.
    const params = fromJson(input.toString("utf8"));
    checkIdentity(params, id, namespace, true);
    return { params, encoding: "json" };
  }
  let params: BootstrapParams;
  try {
    params = BootstrapParams.decode(input);
  } catch {
    return { params: null, encoding: null }; // the runtime options Any of older containerd
  }
  if (!checkIdentity(params, id, namespace, false)) return { params: null, encoding: null };
  return { params, encoding: "binary" };
}

function checkIdentity(p: BootstrapParams, id: string, namespace: string, strict: boolean): boolean {
  if (p.instanceId === id && p.namespace === namespace) return true;
  if (!strict) return false;
  throw invalidArgument(
    `bootstrap parameters (instance_id ${JSON.stringify(p.instanceId)}, namespace ${JSON.stringify(p.namespace)}) do not match the command line (-id ${JSON.stringify(id)}, -namespace ${JSON.stringify(namespace)})`,
  );
}

/** protojson names (camelCase) and the proto's own (snake_case) are both accepted, as protojson does. */
function fromJson(text: string): BootstrapParams {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`bootstrap parameters on stdin are not valid JSON: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw invalidArgument("bootstrap parameters on stdin must be a JSON object");
  const o = raw as Record<string, unknown>;
  const pick = (camel: string, snake: string): unknown => o[camel] ?? o[snake];
  const str = (camel: string, snake: string): string => {
    const v = pick(camel, snake);
    if (v === undefined || v === null) return "";
    if (typeof v !== "string") throw invalidArgument(`bootstrap parameters: ${snake} must be a string`);
    return v;
  };
  const level = pick("logLevel", "log_level");
  const socketDir = pick("socketDir", "socket_dir");
  if (socketDir !== undefined && socketDir !== null && typeof socketDir !== "string") throw invalidArgument("bootstrap parameters: socket_dir must be a string");
  const exts = pick("extensions", "extensions") ?? [];
  if (!Array.isArray(exts)) throw invalidArgument("bootstrap parameters: extensions must be a list");
  return BootstrapParams.create({
    instanceId: str("instanceId", "instance_id"),
    namespace: str("namespace", "namespace"),
    logLevel: logLevelOf(level),
    containerdVersion: str("containerdVersion", "containerd_version"),
    containerdTtrpcAddress: str("containerdTtrpcAddress", "containerd_ttrpc_address"),
    containerdGrpcAddress: str("containerdGrpcAddress", "containerd_grpc_address"),
    containerdBinary: str("containerdBinary", "containerd_binary"),
    // Extensions hold typed Anys a JSON reader cannot decode without their schema; start needs none of them.
    extensions: [],
    socketDir: (socketDir as string | undefined) ?? undefined,
  });
}

const LEVELS: Record<string, number> = {
  LOG_LEVEL_INFO: 0,
  LOG_LEVEL_TRACE: -8,
  LOG_LEVEL_DEBUG: -4,
  LOG_LEVEL_WARN: 4,
  LOG_LEVEL_ERROR: 8,
  LOG_LEVEL_FATAL: 10,
  LOG_LEVEL_PANIC: 12,
};

function logLevelOf(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (typeof v === "string" && v in LEVELS) return LEVELS[v];
  throw invalidArgument(`bootstrap parameters: log_level ${JSON.stringify(v)} is not a level`);
}

/** Debug or more verbose, as containerd's -debug flag means. */
export function wantsDebug(p: BootstrapParams): boolean {
  return p.logLevel < 0;
}

export function protocolFrom(env: NodeJS.ProcessEnv): ShimProtocol | null {
  const v = env[PROTOCOL_ENV];
  if (v === undefined || v === "") return null;
  if (v === "ttrpc" || v === "grpc") return v;
  throw invalidArgument(`${PROTOCOL_ENV}=${JSON.stringify(v)}: want "ttrpc" or "grpc"`);
}

export interface StartAnswer {
  encoding: ResultEncoding;
  protocol: ShimProtocol;
}

/**
 * How to answer: 2.3+ (params on stdin) gets a v3 result in the encoding it
 * used; an explicit protocol without params means a 2.0-2.2 caller, which
 * reads JSON; otherwise the plain address every containerd reads. containerd
 * 1.6 (the one that sets no MAX_SHIM_VERSION) reads nothing but a plain
 * address and speaks only ttrpc, so that is what it gets whatever was asked.
 */
export function answerFor(input: StartInput, asked: ShimProtocol | null, env: NodeJS.ProcessEnv = {}): StartAnswer {
  if (input.encoding) return { encoding: input.encoding, protocol: asked ?? "ttrpc" };
  if (asked && env.MAX_SHIM_VERSION) return { encoding: "json", protocol: asked };
  return { encoding: "plain", protocol: "ttrpc" };
}

export function formatResult(unixAddress: string, a: StartAnswer): Buffer {
  // containerd 2.x dials a gRPC shim with net.Dial("unix", address) before it
  // adds the scheme itself, so a gRPC address is the bare socket path; ttrpc's
  // dialer takes (and 1.x needs) the unix:// form.
  const address = a.protocol === "grpc" ? unixAddress.replace(/^unix:\/\//, "") : unixAddress;
  switch (a.encoding) {
    case "plain":
      return Buffer.from(address);
    case "json":
      return Buffer.from(JSON.stringify({ version: TASK_API_VERSION, address, protocol: a.protocol }));
    case "binary":
      return BootstrapResult.encode({ version: TASK_API_VERSION, address, protocol: a.protocol });
  }
}

export interface ParsedResult {
  version: number;
  address: string;
  protocol: string;
}

/**
 * containerd's parseStartResponse, for the harness: 2.3 tries a protobuf
 * BootstrapResult first; every version then tries JSON, and takes the whole
 * output as a ttrpc v2 address otherwise. 1.7 supports results up to version
 * 2, 2.x up to 3.
 */
export function parseStartResponse(out: Buffer, series: "1.7" | "2.1" | "2.3" = "2.3"): ParsedResult {
  if (series === "2.3") {
    try {
      const r = BootstrapResult.decode(out);
      if (r.address) return { version: r.version, address: r.address, protocol: r.protocol };
    } catch {
      /* not protobuf */
    }
  }
  const text = out.toString().trim();
  const max = series === "1.7" ? 2 : TASK_API_VERSION;
  try {
    const j = JSON.parse(text) as Partial<ParsedResult>;
    if (j && typeof j === "object" && typeof j.version === "number" && j.version >= 2) {
      if (j.version > max) throw new Error(`unsupported shim version (${j.version}): not implemented`);
      return { version: j.version, address: String(j.address ?? ""), protocol: String(j.protocol ?? "ttrpc") };
    }
  } catch (e) {
    if ((e as Error).message.startsWith("unsupported")) throw e;
  }
  return { version: 2, address: text, protocol: "ttrpc" };
}
