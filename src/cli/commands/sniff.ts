// shimlab sniff --shim <binary>: watch a shim's traffic with containerd live.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { TRACE_FILE } from "../../sniff/daemon";
import { SESSION_ENV, type SessionConfig } from "../../sniff/wrapper";
import { LinePrinter } from "../../sniff/printer";
import type { TraceRecord } from "../../trace/recorder";
import { bool, str, UsageError, withArgs } from "../args";

export function sniffCommand(argv: string[]): Promise<number> {
  return withArgs(["sniff"], argv, (p) => sniff(str(p, "shim") ?? "", str(p, "dir") ?? "", !bool(p, "no-follow"), bool(p, "agent")));
}

async function sniff(shim: string, dir: string, follow: boolean, agent: boolean): Promise<number> {
  if (!shim) throw new UsageError("--shim is required", ["sniff"]);
  shim = path.resolve(shim);
  try {
    fs.accessSync(shim, fs.constants.X_OK);
  } catch {
    process.stderr.write(`shimlab sniff: ${shim} is not an executable file\n`);
    return 2;
  }
  dir = path.resolve(dir || path.join("/run/shimlab-sniff", crypto.randomBytes(4).toString("hex")));
  fs.mkdirSync(dir, { recursive: true });
  const cfg: SessionConfig = { shim, agent: agent || /^containerd-shim-shimlab(-fp)?-v2$/.test(path.basename(shim)) };
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
