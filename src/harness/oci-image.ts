// OCI image archives built from a rootfs directory, for `ctr images import`
// (and CRI's k8s.io namespace): one gzip layer, a config, a manifest, an index.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { execFileSync } from "node:child_process";

export interface ImageOptions {
  /** Full reference, e.g. docker.io/library/busybox:shimlab */
  name: string;
  cmd?: string[];
  entrypoint?: string[];
  env?: string[];
  workingDir?: string;
}

function sha256(b: Buffer): string {
  return crypto.createHash("sha256").update(b).digest("hex");
}

/** Writes an OCI image-layout tar archive at out. Returns the manifest digest. */
export function buildOciArchive(rootfs: string, out: string, o: ImageOptions): string {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-img-"));
  try {
    const blobs = path.join(work, "blobs", "sha256");
    fs.mkdirSync(blobs, { recursive: true });
    const put = (b: Buffer): { digest: string; size: number } => {
      const h = sha256(b);
      fs.writeFileSync(path.join(blobs, h), b);
      return { digest: `sha256:${h}`, size: b.length };
    };
    const layerTar = path.join(work, "layer.tar");
    // Fixed owner and mtime: the same rootfs gives the same image.
    execFileSync("tar", ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C", rootfs, "-cf", layerTar, "."]);
    const tar = fs.readFileSync(layerTar);
    fs.rmSync(layerTar);
    const diffId = `sha256:${sha256(tar)}`;
    const layer = put(zlib.gzipSync(tar, { level: 6 }));
    const config = put(
      Buffer.from(
        JSON.stringify({
          architecture: "amd64",
          os: "linux",
          config: {
            Env: o.env ?? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            Cmd: o.cmd ?? ["/bin/sh"],
            Entrypoint: o.entrypoint,
            WorkingDir: o.workingDir ?? "/",
          },
          rootfs: { type: "layers", diff_ids: [diffId] },
          history: [{ created_by: "shimlab oci-image", comment: "busybox rootfs" }],
        }),
      ),
    );
    const manifest = put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
          layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
        }),
      ),
    );
    fs.writeFileSync(
      path.join(work, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            ...manifest,
            annotations: { "io.containerd.image.name": o.name, "org.opencontainers.image.ref.name": o.name.split(":").pop() },
          },
        ],
      }),
    );
    fs.writeFileSync(path.join(work, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    execFileSync("tar", ["-C", work, "-cf", out, "oci-layout", "index.json", "blobs"]);
    return manifest.digest;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
