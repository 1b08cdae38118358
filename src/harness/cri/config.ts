// containerd's CRI plugin configured for shimlab (1.x: one plugin in a version 2
// config; 2.x: images, runtime and the gRPC/streaming plugin in version 3): a runtime handler
// `shimlab` → io.containerd.shimlab.v2 beside `runc`, the local pause image as
// sandbox_image, and a CNI config dir: empty (host-network pods need no CNI;
// the plugin starts without it and reports NetworkReady=false), or a bridge
// network from Debian's CNI plugins (cni.ts).
import fs from "node:fs";
import path from "node:path";
import { PAUSE_IMAGE } from "./images";
import { CNI_PLUGIN_DIR, cniConflist, type CniNetwork } from "./cni";
import { SHIM_BINARY } from "../containerd";
import type { ContainerdPeer } from "../peers/containerd";

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
  /**
   * More handlers for io.containerd.shimlab.v2, each with its own config file (as kata-qemu and
   * kata-clh are Kata's), and on 2.x its own sandboxer if it is not `sandboxer`'s.
   */
  shimlabHandlers?: Record<string, string | ShimlabHandler>;
  /** Pods get their own network: a CNI bridge with host-local addresses (podNetwork in cni.ts). */
  cni?: CniNetwork;
  /** A registry hosts directory (registry-mirrors.ts): `<registry>/hosts.toml` saying where to pull from. */
  registryConfigPath?: string;
  /**
   * containerd 2.x: who makes the shimlab handlers' pods. "podsandbox" (2.x's default): CRI's
   * pause container, grouped onto the pod's shim by annotations; "shim": no pause container,
   * the shim's Sandbox API (CreateSandbox, StartSandbox...) makes the pod. runc stays podsandbox.
   */
  sandboxer?: Sandboxer;
}

export type Sandboxer = "podsandbox" | "shim";

export interface ShimlabHandler {
  configPath?: string;
  sandboxer?: Sandboxer;
}
export const SANDBOXERS: readonly Sandboxer[] = ["podsandbox", "shim"];

/** Where handlerShim puts its launchers: the CRI containerd puts it first on containerd's PATH. */
export function handlerShimDir(dir: string): string {
  return path.join(dir, "shim-bin");
}

/**
 * A shim binary of a handler's own, io.containerd.shimlab-<name>.v2, that runs
 * shimlab's with SHIMLAB_CONFIG set: returns its runtime type.
 */
export function handlerShim(dir: string, name: string, configPath: string): string {
  const bin = handlerShimDir(dir);
  fs.mkdirSync(bin, { recursive: true });
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  fs.writeFileSync(
    path.join(bin, `containerd-shim-shimlab-${name}-v2`),
    `#!/bin/sh\n# CRI handler ${name}: shimlab with ${configPath}\nSHIMLAB_CONFIG=${quote(configPath)} exec ${quote(SHIM_BINARY)} "$@"\n`,
    { mode: 0o755 },
  );
  return `io.containerd.shimlab-${name}.v2`;
}

/** The CRI plugins' TOML for this containerd's config version. */
export function criConfig(o: CriConfigOptions, peer: Pick<ContainerdPeer, "configVersion"> = { configVersion: 2 }): string {
  const cniBin = o.cni ? CNI_PLUGIN_DIR : path.join(o.dir, "cni", "bin");
  const cniConf = path.join(o.dir, "cni", "net.d");
  if (!o.cni) fs.mkdirSync(cniBin, { recursive: true });
  fs.mkdirSync(cniConf, { recursive: true });
  if (o.cni) fs.writeFileSync(path.join(cniConf, "10-shimlab.conflist"), JSON.stringify(cniConflist(o.cni, path.join(o.dir, "cni", "ipam")), null, 2) + "\n");
  const v3 = peer.configVersion === 3;
  const sandboxerLine = (sb: Sandboxer | undefined): string[] => {
    if (!sb) return [];
    if (!v3) throw new Error(`sandboxer = "${sb}" needs containerd 2.x (a version 3 config); this containerd reads version ${peer.configVersion}`);
    if (!SANDBOXERS.includes(sb)) throw new Error(`sandboxer ${JSON.stringify(sb)}: want ${SANDBOXERS.join(" or ")}`);
    return [`      sandboxer = "${sb}"`];
  };
  // 1.x: everything under io.containerd.grpc.v1.cri; 2.x: images, runtime and the server apart.
  const server = v3 ? `plugins.'io.containerd.grpc.v1.cri'` : `plugins."${CRI_PLUGIN}"`;
  const images = v3 ? `plugins.'io.containerd.cri.v1.images'` : server;
  const runtime = v3 ? `plugins.'io.containerd.cri.v1.runtime'` : server;
  const rt = `${runtime}.containerd.runtimes`;
  const lines = [
    `[${server}]`,
    // The streaming server (Exec/Attach/PortForward URLs) on a free loopback port: engineers share this machine.
    `  stream_server_address = "127.0.0.1"`,
    `  stream_server_port = "0"`,
    ...(v3 ? [`[${images}]`, `  snapshotter = "overlayfs"`, `  [${images}.pinned_images]`, `    sandbox = "${o.sandboxImage ?? PAUSE_IMAGE}"`] : [`  sandbox_image = "${o.sandboxImage ?? PAUSE_IMAGE}"`]),
    ...(v3 ? [`[${runtime}]`] : []),
    // No apparmor_parser or SELinux on the test machines; the pods need neither.
    `  disable_apparmor = true`,
    `  enable_selinux = false`,
    // The pause container asks for oom_score_adj -998; where containerd itself
    // runs above that without CAP_SYS_RESOURCE (a container), runc cannot lower
    // it and fails with "can't get final child's PID from pipe". Clamp to ours.
    `  restrict_oom_score_adj = true`,
    `  [${runtime}.containerd]`,
    ...(v3 ? [] : [`    snapshotter = "overlayfs"`]),
    `    default_runtime_name = "runc"`,
    `    [${rt}.runc]`,
    `      runtime_type = "io.containerd.runc.v2"`,
    `    [${rt}.${SHIMLAB_HANDLER}]`,
    `      runtime_type = "${SHIMLAB_RUNTIME}"`,
    ...sandboxerLine(o.sandboxer),
    ...(o.shimlabExtra ?? []).map((l) => `      ${l}`),
  ];
  if (o.shimlabConfigPath) {
    lines.push(`      [${rt}.${SHIMLAB_HANDLER}.options]`, `        ConfigPath = "${o.shimlabConfigPath}"`);
  }
  for (const [name, h] of Object.entries(o.shimlabHandlers ?? {})) {
    if (!/^[a-z0-9-]+$/.test(name) || name === SHIMLAB_HANDLER || name === "runc") throw new Error(`handler name ${JSON.stringify(name)}: want [a-z0-9-]+, not shimlab or runc`);
    const { configPath, sandboxer = o.sandboxer } = typeof h === "string" ? { configPath: h } : h;
    if (configPath && sandboxer === "shim") {
      // containerd 2.1 cannot start a sandboxed task of a handler with an options table that is not
      // runc's (difference shim-sandboxer-runtime-options): the configuration goes in a shim of its
      // own, a launcher that sets it, as Kata's per-hypervisor containerd-shim-kata-qemu-v2 does.
      lines.push(`    [${rt}.${name}]`, `      runtime_type = "${handlerShim(o.dir, name, configPath)}"`, ...sandboxerLine(sandboxer));
      continue;
    }
    lines.push(`    [${rt}.${name}]`, `      runtime_type = "${SHIMLAB_RUNTIME}"`, ...sandboxerLine(sandboxer));
    if (configPath) lines.push(`      [${rt}.${name}.options]`, `        ConfigPath = "${configPath}"`);
  }
  // 2.x reads a list of plugin directories (bin_dir is deprecated there).
  lines.push(`  [${runtime}.cni]`, v3 ? `    bin_dirs = ["${cniBin}"]` : `    bin_dir = "${cniBin}"`, `    conf_dir = "${cniConf}"`);
  // 1.6: [plugins."io.containerd.grpc.v1.cri".registry]; 2.x: the images plugin's.
  if (o.registryConfigPath) lines.push(`  [${images}.registry]`, `    config_path = "${o.registryConfigPath}"`);
  return lines.join("\n") + "\n";
}
