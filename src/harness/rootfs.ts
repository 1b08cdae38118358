// A busybox root filesystem from Debian's busybox-static: one static binary
// and a link per applet, enough for sh, echo, sleep, stty and friends.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";

export const BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox"];

export function findBusybox(): string | null {
  for (const b of BUSYBOX_CANDIDATES) {
    try {
      const out = execFileSync("file", ["-L", b], { stdio: ["ignore", "pipe", "ignore"] }).toString();
      if (/statically linked|static-pie/.test(out)) return b;
    } catch {
      // `file` may be missing: trust the path if it exists
      if (fs.existsSync(b)) return b;
    }
  }
  return null;
}

/** Builds (or reuses) a busybox rootfs in dir. Returns dir. */
export function buildBusyboxRootfs(dir: string, busybox = findBusybox()): string {
  if (!busybox) throw new Error("busybox (static) not found: apt-get install busybox-static");
  const marker = path.join(dir, ".shimlab-rootfs");
  if (fs.existsSync(marker)) return dir;
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.chmodSync(path.join(dir, "tmp"), 0o1777);
  fs.copyFileSync(busybox, path.join(dir, "bin", "busybox"));
  fs.chmodSync(path.join(dir, "bin", "busybox"), 0o755);
  const applets = execFileSync(busybox, ["--list"]).toString().split("\n").filter(Boolean);
  for (const a of applets) {
    const link = path.join(dir, "bin", a);
    if (a !== "busybox" && !fs.existsSync(link)) fs.symlinkSync("busybox", link);
  }
  fs.writeFileSync(path.join(dir, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n");
  fs.writeFileSync(path.join(dir, "etc", "group"), "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n");
  fs.writeFileSync(path.join(dir, "etc", "hostname"), "shimlab\n");
  fs.writeFileSync(marker, busybox + "\n");
  return dir;
}
