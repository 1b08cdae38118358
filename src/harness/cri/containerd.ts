// A private containerd (SHIMLAB_CONTAINERD's) with its CRI plugin on, the shimlab handler
// configured and the local images imported: what a kubelet would talk to.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Containerd } from "../containerd";
import { CriClient } from "./client";
import { criConfig, handlerShimDir, type CriConfigOptions } from "./config";
import { removeCniBridge } from "./cni";
import { buildCriImages, importCriImages, type LocalImages } from "./images";
import type { ContainerdPeer } from "../peers/containerd";

export interface CriContainerdOptions extends Omit<CriConfigOptions, "dir"> {
  /** A busybox rootfs to build the busybox image from (else one is built). */
  busyboxRootfs?: string;
  env?: NodeJS.ProcessEnv;
  logLevel?: "info" | "debug";
  dir?: string;
  /** Which containerd; SHIMLAB_CONTAINERD's when absent (critest runs 1.6 and 2.1 in one file). */
  peer?: ContainerdPeer;
  /** An installed shim's bin directory on containerd's PATH instead of the checkout's bin/. */
  shimBinDir?: string;
  /** Runs on the written config before containerd starts (`shimlab install` editing it). */
  prepareConfig?: (configPath: string) => void | Promise<void>;
}

export interface CriContainerd {
  ctd: Containerd;
  cri: CriClient;
  images: LocalImages;
  /** Closes the client, stops containerd and removes its directory. */
  destroy(): Promise<void>;
}

export async function startCriContainerd(o: CriContainerdOptions = {}): Promise<CriContainerd> {
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "ctd-"));
  // Handlers' own shim launchers (config.ts handlerShim) come first on containerd's PATH.
  const env = { ...o.env, PATH: [handlerShimDir(dir), o.env?.PATH ?? process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"].join(":") };
  const ctd = new Containerd({
    dir,
    cri: true,
    env,
    logLevel: o.logLevel,
    peer: o.peer,
    shimBinDir: o.shimBinDir,
    prepareConfig: o.prepareConfig,
    pluginConfig: (peer) => criConfig({ ...o, dir }, peer),
  });
  let cri: CriClient | null = null;
  try {
    await ctd.start();
    cri = new CriClient(ctd.address);
    await cri.waitForReady();
    const images = await importCriImages(ctd, buildCriImages(path.join(dir, "images"), o.busyboxRootfs));
    // CRI learns of imported images from containerd's image events: wait until it has.
    await waitForImages(cri, [images.pause, images.busybox]);
    const client = cri;
    return {
      ctd,
      cri,
      images,
      destroy: async () => {
        client.close();
        await ctd.destroy();
        if (o.cni) removeCniBridge(o.cni);
      },
    };
  } catch (e) {
    cri?.close();
    await ctd.destroy();
    if (o.cni) removeCniBridge(o.cni);
    throw e;
  }
}

export async function waitForImages(cri: CriClient, refs: string[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const ref of refs) {
    for (;;) {
      const s = await cri.image.ImageStatus({ image: { image: ref } });
      if (s.image) break;
      if (Date.now() > deadline) throw new Error(`CRI does not see image ${ref} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
