// What critest runs against: a private registry holding the stand-in images,
// and a private containerd with CRI whose registry mirrors point at it, a pod
// network (CNI bridge with portmap, for the host-port spec) and the handlers
// runc, shimlab (host agent) and any more shimlab handlers (a QEMU config).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRegistry, type Registry } from "../registry/server";
import { startCriContainerd, type CriContainerd } from "../cri/containerd";
import { writeRegistryMirrors } from "../cri/registry-mirrors";
import type { CniNetwork } from "../cri/cni";
import type { ShimlabHandler } from "../cri/config";
import type { ContainerdPeer } from "../peers/containerd";
import { CRITEST_SANDBOX_IMAGE, MIRRORED_REGISTRIES, pushStandinImages } from "./images";

export interface CritestEnvOptions {
  cni: CniNetwork;
  /** More handlers for io.containerd.shimlab.v2: name → shimlab config file, or config and sandboxer (2.x). */
  shimlabHandlers?: Record<string, string | ShimlabHandler>;
  busyboxRootfs?: string;
  env?: NodeJS.ProcessEnv;
  /** Which containerd (else SHIMLAB_CONTAINERD's). */
  peer?: ContainerdPeer;
}

export interface CritestEnv {
  registry: Registry;
  cri: CriContainerd;
  dir: string;
  /** containerd's CRI socket. */
  socket: string;
  /** Stops containerd and the registry and removes their directories. */
  destroy(): Promise<void>;
}

export async function startCritestEnv(o: CritestEnvOptions): Promise<CritestEnv> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-critest-"));
  let registry: Registry | null = null;
  try {
    registry = await startRegistry({ dir: path.join(dir, "registry") });
    await pushStandinImages(registry.url);
    const hosts = writeRegistryMirrors(path.join(dir, "registry-hosts"), MIRRORED_REGISTRIES, registry.host);
    const cri = await startCriContainerd({
      // Short: containerd's socket paths live under it.
      dir: fs.mkdtempSync(path.join(os.tmpdir(), "ctd-")),
      cni: { ...o.cni, portMap: true },
      sandboxImage: CRITEST_SANDBOX_IMAGE,
      registryConfigPath: hosts,
      shimlabHandlers: o.shimlabHandlers,
      busyboxRootfs: o.busyboxRootfs,
      env: o.env,
      peer: o.peer,
    });
    const reg = registry;
    return {
      registry: reg,
      cri,
      dir,
      socket: cri.ctd.address,
      destroy: async () => {
        await cri.destroy();
        await reg.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await registry?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
