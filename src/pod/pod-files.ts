// The files a pod's containers expect from their sandbox: /etc/hostname,
// /etc/hosts, /etc/resolv.conf and a /dev/shm the pod shares. Under a pause
// container containerd's CRI makes them on the host and mounts them into
// every container; with the shim sandboxer it leaves them to the sandbox
// ("delegated to remote sandbox controller": it mounts each one only if it
// finds it in its own directory, which it never does). So the sandbox writes
// them, as CRI's podsandbox does, and adds the mounts CRI would have added.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { OciMount, OciSpec } from "../oci/spec";
import type { PodConfig } from "./pod-config";
import { mountAll, unmountAll } from "./mount";

/** containerd's defaultShmSize for a pod's /dev/shm. */
const SHM_SIZE = 64 << 20;

const isBind = (m: OciMount) => m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");

export class PodFiles {
  readonly dir: string;
  readonly shm: string | null;
  private shmMounted = false;

  constructor(
    private readonly runDir: string,
    private readonly pod: PodConfig,
  ) {
    this.dir = path.join(runDir, "pod");
    // The node's IPC namespace means the node's /dev/shm, which CRI mounts itself.
    this.shm = pod.ipc === "node" ? null : path.join(runDir, "shm");
  }

  /** Writes the files (CRI's setupSandboxFiles) and mounts the pod's shm tmpfs. */
  async write(etc = "/etc"): Promise<void> {
    fs.mkdirSync(this.runDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(this.dir, "hostname"), (this.pod.hostname || os.hostname()) + "\n", { mode: 0o644 });
    fs.copyFileSync(path.join(etc, "hosts"), path.join(this.dir, "hosts"));
    fs.chmodSync(path.join(this.dir, "hosts"), 0o644);
    const resolv = path.join(this.dir, "resolv.conf");
    if (this.pod.dns) fs.writeFileSync(resolv, resolvConf(this.pod.dns), { mode: 0o644 });
    else {
      // No DNS config means the node's, as CRI reads it.
      fs.copyFileSync(path.join(etc, "resolv.conf"), resolv);
      fs.chmodSync(resolv, 0o644);
    }
    if (this.shm) {
      fs.mkdirSync(this.shm, { recursive: true, mode: 0o700 });
      await mountAll([{ type: "tmpfs", source: "shm", options: ["noexec", "nosuid", "nodev", "mode=1777", `size=${SHM_SIZE}`] }], this.shm);
      this.shmMounted = true;
    }
  }

  /**
   * The container's spec with the pod's files mounted where CRI's own mounts
   * would be: each only where the container's config did not mount that path
   * itself, read-only with a read-only rootfs as CRI does; the pod's /dev/shm
   * replaces the default private tmpfs.
   */
  apply(spec: OciSpec): OciSpec {
    const mounts = [...(spec.mounts ?? [])];
    const ro = spec.root?.readonly ? "ro" : "rw";
    const taken = (dest: string) => mounts.some((m) => m.destination === dest);
    const add: OciMount[] = [];
    for (const [dest, file] of [
      ["/etc/hostname", "hostname"],
      ["/etc/hosts", "hosts"],
      ["/etc/resolv.conf", "resolv.conf"],
    ] as const) {
      if (!taken(dest)) add.push({ destination: dest, type: "bind", source: path.join(this.dir, file), options: ["rbind", "rprivate", ro] });
    }
    let out = mounts;
    if (this.shm) {
      const i = mounts.findIndex((m) => m.destination === "/dev/shm");
      const shm: OciMount = { destination: "/dev/shm", type: "bind", source: this.shm, options: ["rbind", "rprivate", "rw"] };
      if (i < 0) add.push(shm);
      else if (!isBind(mounts[i])) out = mounts.map((m, j) => (j === i ? shm : m));
    }
    return { ...spec, mounts: [...out, ...add] };
  }

  async release(): Promise<void> {
    if (this.shm && this.shmMounted) await unmountAll(this.shm);
    this.shmMounted = false;
  }
}

/** CRI's parseDNSOptions. */
export function resolvConf(d: { servers: string[]; searches: string[]; options: string[] }): string {
  let s = "";
  if (d.searches.length) s += `search ${d.searches.join(" ")}\n`;
  if (d.servers.length) s += `nameserver ${d.servers.join("\nnameserver ")}\n`;
  if (d.options.length) s += `options ${d.options.join(" ")}\n`;
  return s;
}
