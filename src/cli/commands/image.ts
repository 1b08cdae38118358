// shimlab image build [--cache-dir DIR] [--no-runc] [--compression lz4|gzip|none]
// Builds (or finds cached) the QEMU guest image and prints where it is.
import { ensureImage, cacheRoot } from "../../hypervisor/qemu/image";

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "build") {
    process.stderr.write("usage: shimlab image build [--cache-dir DIR] [--no-runc] [--compression lz4|gzip|none] [--json]\n\nThe guest image carries runc unless --no-runc (for [qemu] guest_runtime = \"host\").\n");
    return 2;
  }
  let cacheDir = cacheRoot();
  let runc = true;
  let json = false;
  let compression: "lz4" | "gzip" | "none" | undefined;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--cache-dir" && rest[i + 1]) cacheDir = rest[++i];
    else if (a === "--no-runc") runc = false;
    else if (a === "--json") json = true;
    else if (a === "--compression" && /^(lz4|gzip|none)$/.test(rest[i + 1] ?? "")) compression = rest[++i] as typeof compression;
    else {
      process.stderr.write(`shimlab image build: unknown or incomplete argument ${a}\n`);
      return 2;
    }
  }
  const t0 = Date.now();
  const img = await ensureImage({ cacheDir, runc, compression, onProgress: (m) => process.stderr.write(`image: ${m}\n`) });
  if (json) process.stdout.write(JSON.stringify(img) + "\n");
  else {
    process.stdout.write(`kernel  ${img.kernel}\ninitrd  ${img.initrd} (${(img.initrdBytes / 1e6).toFixed(1)} MB, ${img.compression})\n`);
    process.stdout.write(`${img.built ? "built" : "cached"} in ${Date.now() - t0} ms\n`);
  }
  return 0;
}
