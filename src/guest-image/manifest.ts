// Writes the manifest a sandbox reads (src/hypervisor/qemu/image-manifest.ts):
// where the image is, and what it was built from, with each input's stat data
// and content hash, so that the sandbox's check costs a stat per input.
import fs from "node:fs";
import path from "node:path";
import { agentIdOf, IMAGE_FORMAT, initSha256, manifestPath, sha256Of, type ImageManifest, type ImageVariant, type InputRecord } from "../hypervisor/qemu/image-manifest";
import type { ImageRecord } from "./image";
import type { FileInput } from "./inputs";

/**
 * One manifest for this agent and variant, replaced whole. The inputs' hashes come from the image's
 * record (the content its key was made from), not from a new read, so a file rewritten meanwhile
 * shows as changed instead of being vouched for.
 */
export function writeManifest(cacheDir: string, img: ImageRecord, variant: ImageVariant, files: FileInput[], extra: FileInput[]): string {
  const shaOf = (f: FileInput) => img.inputs[f.dest] ?? sha256Of(f.src);
  const record = (f: FileInput, sha: string): InputRecord => {
    const st = fs.statSync(f.src);
    return { dest: f.dest, path: f.src, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: sha };
  };
  const agent = files.filter((f) => f.agent).map((f) => ({ dest: f.dest, path: f.src, sha256: shaOf(f) }));
  const m: ImageManifest = {
    format: 1,
    imageFormat: IMAGE_FORMAT,
    builtAt: img.builtAt,
    agentId: agentIdOf(agent),
    key: img.key,
    variant,
    kernelVersion: img.kernelVersion,
    compression: img.compression,
    modules: img.modules,
    initSha256: initSha256(img.modules, img.layout),
    kernel: img.kernelArtifact,
    initrd: { path: img.initrd, size: img.initrdBytes, sha256: img.initrdSha256 },
    usr: img.usrDir && img.usrTree ? { path: img.usrDir, ...img.usrTree } : null,
    agent,
    inputs: [...extra.map((f) => record(f, f.dest === "kernel" ? img.inputs.kernel ?? sha256Of(f.src) : sha256Of(f.src))), ...files.filter((f) => !f.agent).map((f) => record(f, shaOf(f)))],
  };
  const out = manifestPath(cacheDir, variant, m.agentId);
  fs.mkdirSync(path.dirname(out), { recursive: true, mode: 0o755 });
  fs.writeFileSync(`${out}.${process.pid}`, JSON.stringify(m, null, 2) + "\n", { mode: 0o644 });
  fs.renameSync(`${out}.${process.pid}`, out);
  return out;
}
