// The kernel's initramfs format: cpio "newc" (ASCII headers, 4-byte
// alignment, a TRAILER!!! entry), written as a stream so a 100 MB image never
// sits in memory whole.
import type { Writable } from "node:stream";

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export interface CpioEntry {
  /** Path inside the archive, without a leading slash ("bin/busybox"). */
  name: string;
  /** Type and permission bits. */
  mode: number;
  data?: Buffer;
  /** Character devices: major and minor numbers. */
  rdev?: [number, number];
}

const hex8 = (n: number) => n.toString(16).padStart(8, "0");
const pad4 = (n: number) => (4 - (n % 4)) % 4;

export function cpioHeader(e: CpioEntry, ino: number): Buffer {
  const name = Buffer.from(e.name + "\0");
  const size = e.data?.length ?? 0;
  const isDir = (e.mode & 0o170000) === S_IFDIR;
  const fields = [ino, e.mode, 0, 0, isDir ? 2 : 1, 0, size, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
  const head = Buffer.from("070701" + fields.map(hex8).join(""), "latin1");
  return Buffer.concat([head, name, Buffer.alloc(pad4(head.length + name.length))]);
}

/** Writes entries to out, honouring backpressure; ends with the trailer (out is not ended). */
export class CpioWriter {
  private ino = 1;
  bytes = 0;

  constructor(private readonly out: Writable) {}

  private async put(b: Buffer): Promise<void> {
    this.bytes += b.length;
    if (!this.out.write(b)) await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error) => reject(e);
      this.out.once("error", onErr);
      this.out.once("drain", () => {
        this.out.removeListener("error", onErr);
        resolve();
      });
    });
  }

  async add(e: CpioEntry): Promise<void> {
    if (e.name.startsWith("/")) throw new Error(`cpio entry ${e.name}: names are relative`);
    await this.put(cpioHeader(e, this.ino++));
    if (e.data?.length) {
      await this.put(e.data);
      const p = pad4(e.data.length);
      if (p) await this.put(Buffer.alloc(p));
    }
  }

  async finish(): Promise<void> {
    await this.put(cpioHeader({ name: "TRAILER!!!", mode: 0 }, 0));
    // The kernel reads the archive in 512-byte blocks, as cpio(1) pads it.
    const p = (512 - (this.bytes % 512)) % 512;
    if (p) await this.put(Buffer.alloc(p));
  }
}
