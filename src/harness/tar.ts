// A tar archive written in memory, entry by entry: image layers whose owners,
// modes (setuid included) and hard links are stated rather than taken from a
// directory on disk, with mtime 0 so that the same entries give the same
// bytes (and so the same layer digest) on every machine.
const BLOCK = 512;

type EntryType = "file" | "dir" | "hardlink" | "symlink";
const TYPEFLAG: Record<EntryType, string> = { file: "0", hardlink: "1", symlink: "2", dir: "5" };

export interface TarEntryOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

function octal(n: number, width: number): string {
  // width-1 digits and a NUL, as ustar readers expect.
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

export class TarWriter {
  private chunks: Buffer[] = [];
  private names = new Set<string>();

  dir(name: string, o: TarEntryOptions = {}): this {
    return this.entry("dir", name.replace(/\/?$/, "/"), Buffer.alloc(0), "", { mode: 0o755, ...o });
  }

  file(name: string, data: Buffer | string, o: TarEntryOptions = {}): this {
    return this.entry("file", name, typeof data === "string" ? Buffer.from(data) : data, "", { mode: 0o644, ...o });
  }

  /** target is another entry's name in this archive (a path inside the image, without a leading /). */
  hardlink(name: string, target: string, o: TarEntryOptions = {}): this {
    const t = target.replace(/^\/+/, "");
    if (!this.names.has(t)) throw new Error(`tar: hard link ${name} → ${t}: no such entry yet`);
    return this.entry("hardlink", name, Buffer.alloc(0), t, { mode: 0o755, ...o });
  }

  symlink(name: string, target: string, o: TarEntryOptions = {}): this {
    return this.entry("symlink", name, Buffer.alloc(0), target, { mode: 0o777, ...o });
  }

  has(name: string): boolean {
    return this.names.has(name.replace(/^\/+/, "").replace(/\/$/, ""));
  }

  /** The archive: entries and the two zero blocks that end it. */
  finish(): Buffer {
    return Buffer.concat([...this.chunks, Buffer.alloc(2 * BLOCK)]);
  }

  private entry(type: EntryType, rawName: string, data: Buffer, link: string, o: TarEntryOptions): this {
    const name = rawName.replace(/^\/+/, "");
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(link) > 100) throw new Error(`tar: name longer than ustar's 100 bytes: ${name} ${link}`);
    const h = Buffer.alloc(BLOCK);
    h.write(name, 0, 100, "utf8");
    h.write(octal(o.mode ?? 0o644, 8), 100, "ascii");
    h.write(octal(o.uid ?? 0, 8), 108, "ascii");
    h.write(octal(o.gid ?? 0, 8), 116, "ascii");
    h.write(octal(type === "file" ? data.length : 0, 12), 124, "ascii");
    h.write(octal(0, 12), 136, "ascii");
    h.write("        ", 148, "ascii");
    h.write(TYPEFLAG[type], 156, "ascii");
    h.write(link, 157, 100, "utf8");
    h.write("ustar\0", 257, "ascii");
    h.write("00", 263, "ascii");
    let sum = 0;
    for (const b of h) sum += b;
    h.write(octal(sum, 7) + " ", 148, "ascii");
    this.chunks.push(h);
    if (type === "file" && data.length) {
      this.chunks.push(data);
      const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
      if (pad) this.chunks.push(Buffer.alloc(pad));
    }
    this.names.add(name.replace(/\/$/, ""));
    return this;
  }
}
