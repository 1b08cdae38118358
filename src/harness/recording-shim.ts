// A shim that records how it was run and then becomes the real one: a small
// script named containerd-shim-<name>-v2 that saves its argv, environment,
// working directory and stdin (start's bootstrap input) and execs the target
// with the same stdin. Put under a real containerd or the emulator, it shows
// what each hands a shim, byte for byte.
import fs from "node:fs";
import path from "node:path";

export interface ShimInvocation {
  action: "start" | "delete" | "daemon";
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  stdin: Buffer;
  /** Order of the invocation within the recording. */
  seq: number;
}

export interface RecordingShim {
  /** The wrapper's directory (put it first on PATH) and its path. */
  binDir: string;
  binary: string;
  /** The runtime type containerd resolves to this binary. */
  runtimeType: string;
  read(): ShimInvocation[];
}

export function writeRecordingShim(dir: string, target: string, name = "rec"): RecordingShim {
  const binDir = path.join(dir, "bin");
  const out = path.join(dir, "invocations");
  fs.mkdirSync(binDir, { recursive: true });
  fs.mkdirSync(out, { recursive: true });
  const binary = path.join(binDir, `containerd-shim-${name}-v2`);
  // NUL-separated argv and environment: values may hold spaces and newlines.
  // The daemon (re-launched by the target itself) never comes through here.
  fs.writeFileSync(
    binary,
    `#!/bin/sh
d=${JSON.stringify(out)}/$(date +%s%N)-$$
mkdir -p "$d"
for a in "$@"; do printf '%s\\0' "$a"; done > "$d/argv"
env -0 > "$d/env"
pwd > "$d/cwd"
cat > "$d/stdin"
exec ${JSON.stringify(target)} "$@" < "$d/stdin"
`,
    { mode: 0o755 },
  );
  return {
    binDir,
    binary,
    runtimeType: `io.containerd.${name}.v2`,
    read: () =>
      fs
        .readdirSync(out)
        .sort((a, b) => (BigInt(a.split("-")[0]) < BigInt(b.split("-")[0]) ? -1 : 1))
        .map((d, seq) => {
          const p = (f: string) => path.join(out, d, f);
          const argv = fs.readFileSync(p("argv"), "utf8").split("\0").slice(0, -1);
          const env = Object.fromEntries(
            fs
              .readFileSync(p("env"), "utf8")
              .split("\0")
              .filter(Boolean)
              .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
          );
          const last = argv.at(-1);
          return { action: last === "start" || last === "delete" ? last : "daemon", argv, env, cwd: fs.readFileSync(p("cwd"), "utf8").trim(), stdin: fs.readFileSync(p("stdin")), seq };
        }),
  };
}
