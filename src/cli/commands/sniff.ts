// shimlab sniff --shim <binary>: watch a shim's traffic with containerd live.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { TRACE_FILE } from "../../sniff/daemon";
import { SESSION_ENV, type SessionConfig } from "../../sniff/wrapper";
import { LinePrinter } from "../../sniff/printer";
import type { TraceRecord } from "../../trace/recorder";

const USAGE = `usage: shimlab sniff --shim <shim binary> [--dir DIR] [--no-follow] [--agent]

Puts a transparent recording proxy between containerd and any shim v2 binary
(runc's, shimlab's, yours): every call, reply, error and event, decoded, with
its ttrpc stream id and latency; a frame it cannot decode is shown raw and
still passed on unchanged. It writes a wrapper shim; run your containers with

  ctr run --runtime <DIR>/containerd-shim-sniff-v2 ...      (no config change)

or put DIR on containerd's PATH and use runtime io.containerd.sniff.v2.
The trace (DIR/${TRACE_FILE}) renders with: shimlab trace render DIR/${TRACE_FILE} -o page.html

  --shim PATH    the real shim binary
  --dir DIR      the session directory (default /run/shimlab-sniff/<random>; socket paths must stay short)
  --no-follow    set up, print the runtime path and exit (the proxies still record)
  --agent        record the shim-to-agent leg too (a shimlab shim, which the name
                 containerd-shim-shimlab-v2 already says): its own wire tap on the
                 agent transport writes into the same trace
`;

export async function sniffCommand(argv: string[]): Promise<number> {
  let shim = "";
  let dir = "";
  let follow = true;
  let agent = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--shim") shim = argv[++i] ?? "";
    else if (a === "--dir") dir = argv[++i] ?? "";
    else if (a === "--no-follow") follow = false;
    else if (a === "--agent") agent = true;
    else if (a === "-h" || a === "--help") {
      process.stdout.write(USAGE);
      return 0;
    } else {
      process.stderr.write(`shimlab sniff: unknown argument ${a}\n\n${USAGE}`);
      return 2;
    }
  }
  if (!shim) {
    process.stderr.write(`shimlab sniff: --shim is required\n\n${USAGE}`);
    return 2;
  }
  shim = path.resolve(shim);
  try {
    fs.accessSync(shim, fs.constants.X_OK);
  } catch {
    process.stderr.write(`shimlab sniff: ${shim} is not an executable file\n`);
    return 2;
  }
  dir = path.resolve(dir || path.join("/run/shimlab-sniff", crypto.randomBytes(4).toString("hex")));
  fs.mkdirSync(dir, { recursive: true });
  const cfg: SessionConfig = { shim, agent: agent || path.basename(shim) === "containerd-shim-shimlab-v2" };
  fs.writeFileSync(path.join(dir, "session.json"), JSON.stringify(cfg, null, 2) + "\n");
  const wrapper = path.join(dir, "containerd-shim-sniff-v2");
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  // containerd hands the shim its own environment: the session is named here, not inherited.
  fs.writeFileSync(
    wrapper,
    `#!/bin/sh\n# Written by shimlab sniff: runs ${shim} behind a recording proxy.\nexec env -u NODE_EXTRA_CA_CERTS ${SESSION_ENV}=${q(dir)} ${q(process.execPath)} ${q(path.join(__dirname, "..", "..", "sniff", "wrapper.js"))} "$@"\n`,
    { mode: 0o755 },
  );
  const trace = path.join(dir, TRACE_FILE);
  fs.closeSync(fs.openSync(trace, "a"));
  process.stdout.write(`shimlab sniff: ${shim}\n  runtime: --runtime ${wrapper}  (or io.containerd.sniff.v2 with ${dir} on containerd's PATH)\n  trace:   ${trace}\n`);
  if (!follow) return 0;
  return followTrace(trace);
}

/** Prints the trace as it grows, until SIGINT or SIGTERM. */
async function followTrace(file: string): Promise<number> {
  const printer = new LinePrinter();
  let offset = 0;
  let rest = "";
  const drain = () => {
    const size = fs.statSync(file).size;
    if (size <= offset) return;
    const fd = fs.openSync(file, "r");
    const buf = Buffer.alloc(size - offset);
    fs.readSync(fd, buf, 0, buf.length, offset);
    fs.closeSync(fd);
    offset = size;
    const text = rest + buf.toString("utf8");
    const lines = text.split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) {
      if (!l.trim()) continue;
      try {
        const line = printer.format(JSON.parse(l) as TraceRecord);
        if (line) process.stdout.write(line + "\n");
      } catch {
        process.stdout.write(`(unreadable trace line) ${l}\n`);
      }
    }
  };
  return new Promise<number>((resolve) => {
    const timer = setInterval(drain, 100);
    const stop = () => {
      clearInterval(timer);
      drain();
      process.stdout.write(`shimlab sniff: trace in ${file}; render it with: shimlab trace render ${file} -o sniff.html\n`);
      resolve(0);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
