// The files a run creates and removes (bundles, `address`, sockets, fifos,
// the sandbox's run directory), seen from outside as containerd would see
// them: inotify watches on the run's directories, so no shim code changes.
import fs from "node:fs";
import path from "node:path";
import type { TraceRecorder } from "./recorder";

export interface WatchRoot {
  dir: string;
  /** Keep only entries this accepts (a shared directory such as /run/containerd/s). */
  accept?: (p: string) => boolean;
  /** Subtrees not worth listing (a rootfs). */
  ignore?: (p: string) => boolean;
  /** Make the directory when it is missing (else a missing root is not watched). */
  create?: boolean;
}

export type FileType = "file" | "dir" | "socket" | "fifo" | "symlink" | "other";

function typeOf(st: fs.Stats): FileType {
  if (st.isSocket()) return "socket";
  if (st.isFIFO()) return "fifo";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFile()) return "file";
  return "other";
}

export class FileWatch {
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private readonly known = new Map<string, FileType>();
  private closed = false;

  constructor(
    private readonly rec: TraceRecorder,
    private readonly roots: WatchRoot[],
  ) {
    for (const r of roots) {
      if (r.create) fs.mkdirSync(r.dir, { recursive: true });
      this.watchDir(r.dir, r, false);
    }
  }

  private watchDir(dir: string, root: WatchRoot, report: boolean): void {
    if (this.closed || this.watchers.has(dir)) return;
    try {
      const w = fs.watch(dir, { persistent: false }, (_type, name) => {
        if (name) this.look(path.join(dir, name.toString()), root);
      });
      w.on("error", () => this.unwatch(dir));
      this.watchers.set(dir, w);
    } catch {
      return; // gone already
    }
    // Entries made before the watch was in place.
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      /* gone */
    }
    for (const n of names) this.look(path.join(dir, n), root, report);
  }

  private unwatch(dir: string): void {
    this.watchers.get(dir)?.close();
    this.watchers.delete(dir);
  }

  private look(p: string, root: WatchRoot, report = true): void {
    if (this.closed || root.ignore?.(p)) return;
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(p);
    } catch {
      st = null;
    }
    const was = this.known.get(p);
    if (!st) {
      if (was === undefined) return;
      // A removed directory takes what was under it along.
      for (const k of [...this.known.keys()]) if (k.startsWith(p + "/")) this.gone(k);
      this.gone(p);
      return;
    }
    const t = typeOf(st);
    if (was === t) return;
    if (root.accept && !root.accept(p)) return;
    this.known.set(p, t);
    if (report) this.rec.record("file", { op: "created", path: p, type: t, mode: (st.mode & 0o7777).toString(8) });
    else this.rec.record("file", { op: "existing", path: p, type: t });
    if (t === "dir") this.watchDir(p, root, true);
  }

  private gone(p: string): void {
    const t = this.known.get(p);
    this.known.delete(p);
    if (t === "dir") this.unwatch(p);
    this.rec.record("file", { op: "removed", path: p, type: t });
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}

/** One file as a process that just made it knows it: a record without a watch. */
export function recordFile(rec: TraceRecorder, p: string, op: "created" | "removed" = "created"): void {
  try {
    const st = fs.lstatSync(p);
    rec.record("file", { op, path: p, type: typeOf(st), mode: (st.mode & 0o7777).toString(8) });
  } catch {
    /* not there: nothing to tell */
  }
}
