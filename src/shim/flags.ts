// containerd's shim command line, parsed as Go's flag package does:
// `-name value`, `--name value`, `-name=value`, booleans without a value, and
// the action (start, delete, or none for the daemon) as the first positional.

export interface ShimFlags {
  namespace: string;
  id: string;
  address: string;
  publishBinary: string;
  bundle: string;
  socket: string;
  debug: boolean;
  version: boolean;
  info: boolean;
  debugSocket: string;
  action: string;
  rest: string[];
}

const BOOL = new Set(["debug", "v", "info"]);
const STRING: Record<string, keyof ShimFlags> = {
  namespace: "namespace",
  id: "id",
  address: "address",
  "publish-binary": "publishBinary",
  bundle: "bundle",
  socket: "socket",
  "debug-socket": "debugSocket",
};

export class FlagError extends Error {}

export function parseFlags(argv: string[]): ShimFlags {
  const f: ShimFlags = {
    namespace: "",
    id: "",
    address: "",
    publishBinary: "",
    bundle: "",
    socket: "",
    debug: false,
    version: false,
    info: false,
    debugSocket: "",
    action: "",
    rest: [],
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break;
    let name = a.replace(/^--?/, "");
    let value: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (BOOL.has(name)) {
      const on = value === undefined ? true : !["false", "0", "f", "F", "FALSE", "False"].includes(value);
      if (name === "debug") f.debug = on;
      else if (name === "v") f.version = on;
      else f.info = on;
      continue;
    }
    const key = STRING[name];
    if (!key) throw new FlagError(`flag provided but not defined: -${name}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${name}`);
      value = argv[++i];
    }
    (f as unknown as Record<string, string>)[key] = value;
  }
  f.action = argv[i] ?? "";
  f.rest = argv.slice(i + 1);
  return f;
}

/** The daemon's argv: what `start` re-launches itself with. */
export function daemonArgs(f: ShimFlags): string[] {
  const args = ["-namespace", f.namespace, "-id", f.id, "-address", f.address];
  if (f.publishBinary) args.push("-publish-binary", f.publishBinary);
  if (f.socket) args.push("-socket", f.socket);
  if (f.debug) args.push("-debug");
  return args;
}
