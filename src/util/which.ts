// Where a program is, without spawning a shell: the sbin directories first
// (root's tools, ip and tc among them, are there even when PATH lacks them),
// then PATH.
import fs from "node:fs";
import path from "node:path";

export function searchDirs(pathEnv = process.env.PATH ?? ""): string[] {
  return ["/usr/sbin", "/usr/bin", "/sbin", "/bin", ...pathEnv.split(":")].filter(Boolean);
}

export function which(bin: string, dirs: string[] = searchDirs()): string | null {
  for (const d of dirs) {
    const p = path.join(d, bin);
    if (fs.existsSync(p)) return p;
  }
  return null;
}
