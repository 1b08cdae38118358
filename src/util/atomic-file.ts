// A file its readers see whole or not at all (`delete` reading a VM record or a stopping marker,
// containerd the address): written beside itself as `.<name>`, then renamed over it, which replaces
// it atomically. native/oneshot.c's write_atomic makes the same temporary.
import fs from "node:fs";
import path from "node:path";

export function writeFileAtomic(file: string, data: string): void {
  const tmp = path.join(path.dirname(file), "." + path.basename(file));
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
