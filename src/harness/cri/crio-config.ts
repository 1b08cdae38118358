// CRI-O's configuration for a private instance: every path CRI-O would take
// on the host (/var/lib/containers, /var/run/crio, /etc/cni, /etc/containers)
// moved under one directory, cgroupfs (no systemd here), its default runtime
// runc (run by conmon), and shimlab as a `vm` runtime handler, the
// way Kata is configured for CRI-O: runtime_path names the shim v2 binary,
// runtime_config_path its configuration (passed to the shim in
// CreateTaskRequest.options as runtimeoptions.v1.Options.ConfigPath).
import fs from "node:fs";
import path from "node:path";
import { CNI_PLUGIN_DIR, cniConflist, type CniNetwork } from "./cni";
import { SHIM_BINARY } from "../containerd";
import type { CrioPeer } from "../peers/crio";
import { canLowerOomScore } from "../../mock-agent/oom-score";

export interface CrioConfigOptions {
  /** Everything CRI-O keeps goes under it. */
  dir: string;
  peer: CrioPeer;
  pauseImage: string;
  /** Pods' network: a CNI bridge (cni.ts); none means host-network pods only. */
  cni?: CniNetwork;
  /** shimlab handlers: name → shimlab config file, or "" for the shim's defaults (the host agent). */
  shimlabHandlers: Record<string, string>;
  /** The shim binary CRI-O starts (else the checkout's). */
  shimBinary?: string;
  /** Registries pulled from through a mirror on 127.0.0.1 (plain HTTP). */
  mirror?: { registries: string[]; host: string };
  logLevel?: "info" | "debug";
}

export interface CrioFiles {
  config: string;
  socket: string;
  registriesConf: string;
  storageConf: string;
}

const q = (s: string) => JSON.stringify(s);

/**
 * CRI-O asks oom_score_adj -998 for every infra container and, unlike
 * containerd (restrict_oom_score_adj), never clamps it; without
 * CAP_SYS_RESOURCE (a container's bounding set here) runc's init then fails.
 * Its runc handler gets a wrapper that raises a lower value in config.json to
 * the caller's own, the clamp containerd's CRI applies for the same machine.
 */
export function oomClampingRunc(dir: string, runc: string): string {
  const p = path.join(dir, "runc-oom-clamp");
  fs.writeFileSync(
    p,
    `#!/bin/sh
# runc for CRI-O without CAP_SYS_RESOURCE: oom_score_adj no lower than ours (crio-config.ts).
bundle= prev=
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle=$a ;; esac
  case "$a" in --bundle=*) bundle=\${a#--bundle=} ;; esac
  prev=$a
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  own=$(cat /proc/self/oom_score_adj)
  v=$(grep -o '"oomScoreAdj": *-\\{0,1\\}[0-9]*' "$bundle/config.json" | head -n 1 | sed 's/.*: *//')
  if [ -n "$v" ] && [ "$v" -lt "$own" ]; then sed -i "s/\\"oomScoreAdj\\": *$v\\b/\\"oomScoreAdj\\": $own/" "$bundle/config.json"; fi
fi
exec ${q(runc)} "$@"
`,
    { mode: 0o755 },
  );
  return p;
}

/** Writes crio.conf, registries.conf, storage.conf and policy.json under dir. */
export function writeCrioConfig(o: CrioConfigOptions): CrioFiles {
  const d = (...p: string[]) => path.join(o.dir, ...p);
  for (const sub of ["root", "runroot", "run", "lib", "pods", "ns", "exits", "cdi", "keys", "cni/net.d", "cni/ipam", "hooks"]) fs.mkdirSync(d(sub), { recursive: true });
  if (o.cni) fs.writeFileSync(d("cni/net.d/10-shimlab.conflist"), JSON.stringify(cniConflist(o.cni, d("cni/ipam")), null, 2) + "\n");
  fs.writeFileSync(d("policy.json"), JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }, null, 2) + "\n");
  // containers/storage reads /etc/containers/storage.conf unless told otherwise: a file of its own.
  fs.writeFileSync(d("storage.conf"), [`[storage]`, `driver = "overlay"`, `graphroot = ${q(d("root"))}`, `runroot = ${q(d("runroot"))}`, ""].join("\n"));
  const reg = [`unqualified-search-registries = ["docker.io"]`, `short-name-mode = "permissive"`, ""];
  for (const r of o.mirror?.registries ?? []) reg.push(`[[registry]]`, `prefix = ${q(r)}`, `location = ${q(r)}`, `[[registry.mirror]]`, `location = ${q(o.mirror!.host)}`, `insecure = true`, "");
  fs.writeFileSync(d("registries.conf"), reg.join("\n"));
  const shim = o.shimBinary ?? SHIM_BINARY;
  const runc = canLowerOomScore() ? o.peer.runc : oomClampingRunc(o.dir, o.peer.runc);
  const lines = [
    `[crio]`,
    `root = ${q(d("root"))}`,
    `runroot = ${q(d("runroot"))}`,
    `storage_driver = "overlay"`,
    `log_dir = ${q(d("pods"))}`,
    `version_file = ${q(d("run", "version"))}`,
    `clean_shutdown_file = ${q(d("lib", "clean.shutdown"))}`,
    `[crio.api]`,
    `listen = ${q(d("crio.sock"))}`,
    // Exec/Attach/PortForward URLs on a free loopback port: engineers share this machine.
    `stream_address = "127.0.0.1"`,
    `stream_port = "0"`,
    `[crio.runtime]`,
    `default_runtime = "runc"`,
    `cgroup_manager = "cgroupfs"`,
    `conmon = ${q(o.peer.conmon)}`,
    `conmon_cgroup = "pod"`,
    `pinns_path = ${q(o.peer.pinns)}`,
    `namespaces_dir = ${q(d("ns"))}`,
    `container_exits_dir = ${q(d("exits"))}`,
    `container_attach_socket_dir = ${q(d("run"))}`,
    `decryption_keys_path = ${q(d("keys"))}`,
    `hooks_dir = [${q(d("hooks"))}]`,
    `cdi_spec_dirs = [${q(d("cdi"))}]`,
    `irqbalance_config_file = ""`,
    `irqbalance_config_restore_file = "disable"`,
    `selinux = false`,
    `enable_criu_support = false`,
    // Host ports by CNI's portmap plugin (chained in the conflist), as containerd's CRI does. CRI-O's
    // own hostport manager crashes 1.34.0 on a hostPort pod where the nft command is missing: it
    // calls Add on a nil *hostportManagerNFTables held in an interface (meta_hostport_manager.go).
    `disable_hostport_mapping = ${o.cni?.portMap ? "true" : "false"}`,
    `log_level = ${q(o.logLevel ?? "info")}`,
    `[crio.runtime.runtimes.runc]`,
    `runtime_path = ${q(runc)}`,
    `runtime_type = "oci"`,
    `runtime_root = ${q(d("run", "runc"))}`,
    `monitor_path = ${q(o.peer.conmon)}`,
    `monitor_cgroup = "pod"`,
  ];
  for (const [name, config] of Object.entries(o.shimlabHandlers)) {
    if (!/^[a-z0-9-]+$/.test(name) || name === "runc") throw new Error(`handler name ${JSON.stringify(name)}: want [a-z0-9-]+, not runc`);
    lines.push(
      `[crio.runtime.runtimes.${name}]`,
      `runtime_path = ${q(shim)}`,
      `runtime_type = "vm"`,
      `runtime_root = ${q(d("run", "vm", name))}`,
      // As Kata's CRI-O drop-in: the host's devices do not exist in a VM.
      `privileged_without_host_devices = true`,
      ...(config ? [`runtime_config_path = ${q(config)}`] : []),
    );
  }
  lines.push(
    `[crio.image]`,
    `pause_image = ${q(o.pauseImage)}`,
    `signature_policy = ${q(d("policy.json"))}`,
    `signature_policy_dir = ${q(d("policies"))}`,
    `[crio.network]`,
    `network_dir = ${q(d("cni/net.d"))}`,
    `plugin_dirs = [${q(CNI_PLUGIN_DIR)}]`,
    `[crio.metrics]`,
    `enable_metrics = false`,
    `[crio.nri]`,
    `enable_nri = false`,
    "",
  );
  fs.writeFileSync(d("crio.conf"), lines.join("\n"));
  return { config: d("crio.conf"), socket: d("crio.sock"), registriesConf: d("registries.conf"), storageConf: d("storage.conf") };
}
