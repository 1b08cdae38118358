// OCI images: archives built from a rootfs directory, for `ctr images import`
// (and CRI's k8s.io namespace): one gzip layer, a config, a manifest, an index;
// and images as blobs in memory (ociImage), for pushing to a registry.
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

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  bytes: Buffer;
}

function blob(mediaType: string, bytes: Buffer): Blob {
  return { mediaType, digest: `sha256:${sha256(bytes)}`, size: bytes.length, bytes };
}

/** A layer from an uncompressed tar: the gzip blob, and the tar's digest (the config's diff_id). */
export interface Layer {
  blob: Blob;
  diffId: string;
}

export function ociLayer(tar: Buffer): Layer {
  return { blob: blob(OCI_LAYER_GZIP, zlib.gzipSync(tar, { level: 6 })), diffId: `sha256:${sha256(tar)}` };
}

/** The image's `config` section (Docker's field names, which the OCI config keeps). */
export interface ImageRunConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, object>;
  StopSignal?: string;
}

export interface OciImage {
  manifest: Blob;
  config: Blob;
  layers: Blob[];
}

/** An image in memory: config and manifest over the given layers, bottom first. */
export function ociImage(layers: Layer[], run: ImageRunConfig, history = "shimlab oci-image"): OciImage {
  const created = "2024-01-01T00:00:00Z";
  const config = blob(
    OCI_CONFIG,
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        created,
        config: run,
        rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
        history: layers.map(() => ({ created, created_by: history })),
      }),
    ),
  );
  const manifest = blob(
    OCI_MANIFEST,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ mediaType: l.blob.mediaType, digest: l.blob.digest, size: l.blob.size })),
      }),
    ),
  );
  return { manifest, config, layers: layers.map((l) => l.blob) };
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
