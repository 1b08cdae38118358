// Pushing in-memory OCI images to a registry with the distribution HTTP API
// v2, the few calls a push is: HEAD a blob, mount it from a repository that
// has it, or upload it (POST, then one PUT with the digest); then PUT the
// manifest under each tag. Chosen over skopeo (one more package, and images
// written to disk as OCI layouts only to be read back) because the stand-in
// images are built in memory and share their base layer: each blob goes over
// the wire once and is mounted into the other repositories.
import type { Blob, OciImage } from "../oci-image";

export class RegistryPusher {
  /** Where each blob already is: digest → a repository holding it. */
  private where = new Map<string, string>();

  constructor(readonly url: string) {}

  async push(image: OciImage, repo: string, tags: string[]): Promise<void> {
    for (const b of [...image.layers, image.config]) await this.blob(repo, b);
    for (const tag of tags) {
      const r = await fetch(`${this.url}/v2/${repo}/manifests/${tag}`, {
        method: "PUT",
        headers: { "Content-Type": image.manifest.mediaType },
        body: image.manifest.bytes,
      });
      await expectStatus(r, [201], `PUT manifest ${repo}:${tag}`);
      const digest = r.headers.get("docker-content-digest");
      if (digest && digest !== image.manifest.digest) throw new Error(`registry stored ${repo}:${tag} as ${digest}, pushed ${image.manifest.digest}`);
    }
  }

  private async blob(repo: string, b: Blob): Promise<void> {
    const head = await fetch(`${this.url}/v2/${repo}/blobs/${b.digest}`, { method: "HEAD" });
    if (head.status === 200) return;
    const from = this.where.get(b.digest);
    const start = await fetch(`${this.url}/v2/${repo}/blobs/uploads/${from ? `?mount=${b.digest}&from=${from}` : ""}`, { method: "POST" });
    if (start.status === 201) {
      // Mounted: the registry linked the blob it already has into this repository.
      await start.arrayBuffer();
      this.where.set(b.digest, repo);
      return;
    }
    await expectStatus(start, [202], `start upload of ${b.digest} to ${repo}`);
    const location = start.headers.get("location");
    if (!location) throw new Error(`registry gave no upload location for ${b.digest} in ${repo}`);
    const put = new URL(location, this.url);
    put.searchParams.set("digest", b.digest);
    const r = await fetch(put, { method: "PUT", headers: { "Content-Type": "application/octet-stream" }, body: b.bytes });
    await expectStatus(r, [201], `upload ${b.digest} to ${repo}`);
    this.where.set(b.digest, repo);
  }
}

async function expectStatus(r: Response, ok: number[], what: string): Promise<void> {
  const body = await r.text();
  if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${body.slice(0, 300)}`);
}
