// Where fetched and built peers live: one directory per thing and version,
// filled in a scratch directory beside it and renamed into place, so that a
// half-done fetch is never taken for a finished one.
import fs from "node:fs";
import path from "node:path";

export function peersCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.SHIMLAB_CACHE_DIR || "/var/cache/shimlab", "peers");
}

/** A directory name from a version string (Debian's `~` and `+`, Go's `@`). */
export function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, "_");
}

/**
 * Returns dir, filling it first with fill(tmp) if it is not there yet. A
 * concurrent filler of the same dir loses the rename and uses the winner's.
 */
export async function cached(dir: string, fill: (tmp: string) => Promise<void> | void): Promise<string> {
  if (fs.existsSync(path.join(dir, ".complete"))) return dir;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    await fill(tmp);
    fs.writeFileSync(path.join(tmp, ".complete"), new Date().toISOString() + "\n");
    if (fs.existsSync(dir) && !fs.existsSync(path.join(dir, ".complete"))) fs.rmSync(dir, { recursive: true, force: true });
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      if (!fs.existsSync(path.join(dir, ".complete"))) throw e;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}
