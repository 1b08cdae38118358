// Writing the initramfs: cpio archives, concatenated and compressed as the
// kernel reads them (lz4 only in its legacy frame format, as one stream).
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { Writable } from "node:stream";
import { spawn } from "node:child_process";
import { CpioWriter, type CpioEntry } from "./cpio";

/** Every directory above the files, for the archive to create before them. */
export function dirsOf(files: string[]): string[] {
  const dirs = new Set<string>();
  for (const f of files) for (let d = path.dirname(f); d !== "." && d !== "/"; d = path.dirname(d)) dirs.add(d);
  return [...dirs].sort();
}

/** A file behind the image's compression; `done` settles once everything written is on disk. */
function compressedFile(file: fs.WriteStream, compression: string): { sink: Writable; done: Promise<void> } {
  const fileDone = new Promise<void>((resolve, reject) => {
    file.on("close", resolve);
    file.on("error", reject);
  });
  if (compression === "lz4") {
    // The kernel reads only lz4's legacy frame format (-l).
    const p = spawn("lz4", ["-l", "-c", "-1"], { stdio: ["pipe", "pipe", "pipe"] });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    p.stdout.pipe(file);
    const done = new Promise<void>((resolve, reject) => {
      p.on("error", reject);
      p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`lz4 exited ${code}: ${err.trim()}`))));
    }).then(() => fileDone);
    return { sink: p.stdin, done };
  }
  if (compression === "gzip") {
    const z = zlib.createGzip({ level: 1 });
    z.pipe(file);
    return { sink: z, done: fileDone };
  }
  return { sink: file, done: fileDone };
}

export async function writeInitramfs(out: string, entries: () => AsyncGenerator<CpioEntry>, compression: string, progress: (n: number) => void): Promise<void> {
  const { sink, done } = compressedFile(fs.createWriteStream("", { fd: fs.openSync(out, "w", 0o644) }), compression);
  const w = new CpioWriter(sink);
  for await (const e of entries()) {
    await w.add(e);
    progress(w.bytes);
  }
  await w.finish();
  sink.end();
  await done;
}

/** Later archives in one initramfs add files to earlier ones: the snapshot, made after the rest. */
export async function cpioOf(entries: CpioEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  const w = new CpioWriter(sink);
  for (const e of entries) await w.add(e);
  await w.finish();
  return Buffer.concat(chunks);
}

/** Concatenates files into one compressed stream (the kernel's lz4 reads only one legacy-format stream). */
export async function compressFiles(parts: string[], out: string, compression: string): Promise<void> {
  const { sink, done } = compressedFile(fs.createWriteStream(out, { mode: 0o644 }), compression);
  for (const p of parts) {
    for await (const chunk of fs.createReadStream(p)) {
      if (!sink.write(chunk)) await new Promise((r) => sink.once("drain", r));
    }
  }
  sink.end();
  await done;
}
