// containerd 1.6's CRI plugin configured for shimlab: a runtime handler
// `shimlab` → io.containerd.shimlab.v2 beside `runc`, the local pause image as
// sandbox_image, and an empty CNI config dir (host-network pods need no CNI;
// the plugin starts without it and reports NetworkReady=false).
import fs from "node:fs";
import path from "node:path";
import { PAUSE_IMAGE } from "./images";

export const CRI_PLUGIN = "io.containerd.grpc.v1.cri";
export const SHIMLAB_HANDLER = "shimlab";
export const SHIMLAB_RUNTIME = "io.containerd.shimlab.v2";

export interface CriConfigOptions {
  /** Where the (empty) CNI bin and conf dirs go. */
  dir: string;
  sandboxImage?: string;
  /** A shimlab config file, passed as runtimeoptions ConfigPath (else the shim's defaults / SHIMLAB_CONFIG). */
  shimlabConfigPath?: string;
  /** Extra per-handler TOML lines for the shimlab runtime (pod_annotations etc.). */
  shimlabExtra?: string[];
}

/** TOML to append to a `version = 2` containerd config. */
export function criConfig(o: CriConfigOptions): string {
  const cniBin = path.join(o.dir, "cni", "bin");
  const cniConf = path.join(o.dir, "cni", "net.d");
  fs.mkdirSync(cniBin, { recursive: true });
  fs.mkdirSync(cniConf, { recursive: true });
  const p = `plugins."${CRI_PLUGIN}"`;
  const lines = [
    `[${p}]`,
    `  sandbox_image = "${o.sandboxImage ?? PAUSE_IMAGE}"`,
    // The streaming server (Exec/Attach/PortForward URLs) on a free loopback port: engineers share this machine.
    `  stream_server_address = "127.0.0.1"`,
    `  stream_server_port = "0"`,
    // No apparmor_parser or SELinux on the test machines; the pods need neither.
    `  disable_apparmor = true`,
    `  enable_selinux = false`,
    // The pause container asks for oom_score_adj -998; where containerd itself
    // runs above that without CAP_SYS_RESOURCE (a container), runc cannot lower
    // it and fails with "can't get final child's PID from pipe". Clamp to ours.
    `  restrict_oom_score_adj = true`,
    `  [${p}.containerd]`,
    `    snapshotter = "overlayfs"`,
    `    default_runtime_name = "runc"`,
    `    [${p}.containerd.runtimes.runc]`,
    `      runtime_type = "io.containerd.runc.v2"`,
    `    [${p}.containerd.runtimes.${SHIMLAB_HANDLER}]`,
    `      runtime_type = "${SHIMLAB_RUNTIME}"`,
    ...(o.shimlabExtra ?? []).map((l) => `      ${l}`),
  ];
  if (o.shimlabConfigPath) {
    lines.push(`      [${p}.containerd.runtimes.${SHIMLAB_HANDLER}.options]`, `        ConfigPath = "${o.shimlabConfigPath}"`);
  }
  lines.push(`  [${p}.cni]`, `    bin_dir = "${cniBin}"`, `    conf_dir = "${cniConf}"`);
  return lines.join("\n") + "\n";
}
