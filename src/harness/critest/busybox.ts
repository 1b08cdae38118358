// The base layer of critest's stand-in images: Debian's dynamically linked
// busybox (package `busybox`, unpacked from the machine's own Debian release,
// never installed: it conflicts with busybox-static) with the libraries ldd
// names, and one hard link per applet. Each choice is one critest checks:
//   - busybox-static's shell runs applets in-process, so masking /bin/ls
//     (the MaskedPaths spec expects "Permission denied") would not stop `ls`;
//     the dynamic build execs them from PATH like upstream's busybox images;
//   - hard links, not symlinks: masking /bin/ls must not mask /bin/busybox;
//   - Debian's busybox has no pgrep and no ipcs, which critest runs: shell
//     stand-ins reading /proc take their place.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { PrivateApt } from "../peers/debian";
import { TarWriter } from "../tar";

/** The machine's Debian release: the libraries put beside busybox are the host's, so its busybox must be built for them. */
function debianCodename(): string {
  const m = /^VERSION_CODENAME=(\S+)$/m.exec(fs.readFileSync("/etc/os-release", "utf8"));
  if (!m) throw new Error("no VERSION_CODENAME in /etc/os-release: critest's busybox comes from this Debian release");
  return m[1].replace(/"/g, "");
}

/** Debian's dynamic busybox binary, fetched into the peers cache. */
export async function debianBusybox(): Promise<string> {
  const pkg = await new PrivateApt(debianCodename()).fetch("busybox", "");
  const bin = path.join(pkg.dir, "bin", "busybox");
  if (!fs.existsSync(bin)) throw new Error(`the busybox package ${pkg.version} has no bin/busybox (unpacked in ${pkg.dir})`);
  return bin;
}

export const PASSWD = [
  "root:x:0:0:root:/root:/bin/sh",
  "daemon:x:1:1:daemon:/usr/sbin:/bin/false",
  "bin:x:2:2:bin:/bin:/bin/false",
  "sys:x:3:3:sys:/dev:/bin/false",
  "sync:x:4:100:sync:/bin:/bin/sync",
  "mail:x:8:8:mail:/var/spool/mail:/bin/false",
  "www-data:x:33:33:www-data:/var/www:/bin/false",
  "operator:x:37:37:Operator:/var:/bin/false",
  "nobody:x:65534:65534:nobody:/home:/bin/false",
];
export const GROUP = [
  "root:x:0:",
  "daemon:x:1:",
  "bin:x:2:",
  "sys:x:3:",
  "adm:x:4:",
  "tty:x:5:",
  "disk:x:6:",
  "wheel:x:10:root",
  "mail:x:12:",
  "www-data:x:33:",
  "operator:x:37:",
  "users:x:100:",
  "nogroup:x:65534:",
];

const PGREP = `#!/bin/sh
# critest stand-in for pgrep (Debian's busybox has none): the pids whose
# /proc/PID/comm matches the extended regexp PATTERN.
[ $# -ge 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
rc=1
for d in /proc/[0-9]*; do
  c=$(cat "$d/comm" 2>/dev/null) || continue
  if echo "$c" | grep -qE -- "$1"; then echo "\${d#/proc/}"; rc=0; fi
done
exit $rc
`;

const IPCS = `#!/bin/sh
# critest stand-in for ipcs -m (Debian's busybox has no ipcs): this IPC
# namespace's shared memory segments, from /proc/sysvipc/shm.
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch"
tail -n +2 /proc/sysvipc/shm | while read key shmid perms size cpid lpid nattch uid rest; do
  echo "$key $shmid $uid $perms $size $nattch"
done
`;

/** Paths of the shared libraries a dynamic binary loads, as ldd resolves them on this machine. */
function sharedLibraries(bin: string): string[] {
  const out = execFileSync("ldd", [bin], { encoding: "utf8" });
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    const f = line.trim().split(/\s+/);
    const p = f[1] === "=>" ? f[2] : f[0];
    if (p?.startsWith("/")) libs.push(p);
  }
  if (!libs.length) throw new Error(`ldd ${bin} names no libraries: want Debian's dynamic busybox, not busybox-static`);
  return libs;
}

export interface BusyboxLayerOptions {
  busybox: string;
  passwd?: string[];
  group?: string[];
}

/** The base layer's tar: a small root filesystem around busybox. */
export function busyboxLayerTar(o: BusyboxLayerOptions): Buffer {
  const t = new TarWriter();
  for (const d of ["bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "var", "var/run", "var/www", "var/spool", "var/spool/mail"]) t.dir(d);
  t.dir("root", { mode: 0o700 });
  t.dir("tmp", { mode: 0o1777 });
  t.file("bin/busybox", fs.readFileSync(o.busybox), { mode: 0o755 });
  for (const lib of sharedLibraries(o.busybox)) {
    const parts = path.dirname(lib).split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!t.has(d)) t.dir(d);
    }
    t.file(lib.slice(1), fs.readFileSync(fs.realpathSync(lib)), { mode: 0o755 });
  }
  const applets = new Set(execFileSync(o.busybox, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean));
  for (const a of [...applets].sort()) if (a !== "busybox") t.hardlink(`bin/${a}`, "bin/busybox");
  if (!applets.has("pgrep")) t.file("bin/pgrep", PGREP, { mode: 0o755 });
  if (!applets.has("ipcs")) t.file("bin/ipcs", IPCS, { mode: 0o755 });
  t.file("etc/passwd", [...(o.passwd ?? PASSWD), ""].join("\n"));
  t.file("etc/group", [...(o.group ?? GROUP), ""].join("\n"));
  return t.finish();
}
