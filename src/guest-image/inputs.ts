// What goes into a guest image: busybox, node, runc and the shared libraries
// they need, the agent's files, and Debian's virtio/9p modules; each with its
// place in the guest.
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { agentFiles, GUEST_CRUN } from "../hypervisor/qemu/image-manifest";
import type { KernelSource } from "./kernel";

/** What the guest needs: the agent channel, the PCI/MMIO transports, and 9p for kataShared. */
export const GUEST_MODULES = ["virtio_pci", "virtio_mmio", "virtio_console", "9pnet_virtio", "9p", "virtio_net"];

export interface FileInput {
  /** Path in the guest, relative. */
  dest: string;
  src: string;
  mode?: number;
  /** Debug symbols out (node carries 12 MB): less initramfs for the kernel to unpack under TCG. */
  strip?: boolean;
  /** One of the agent's files, which name the image's manifest (image-manifest.ts). */
  agent?: boolean;
}

/** The file's bytes, without symbols when asked and strip(1) is there. */
export function contentOf(f: FileInput, stripBin: string | null, tmpDir: string): Buffer {
  if (!f.strip || !stripBin) return fs.readFileSync(f.src);
  const out = path.join(tmpDir, `.strip-${path.basename(f.src)}`);
  const r = spawnSync(stripBin, ["--strip-all", "-o", out, f.src], { encoding: "utf8" });
  if (r.status !== 0) return fs.readFileSync(f.src); // not an ELF strip understands: as is
  try {
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(out, { force: true });
  }
}

/** Shared libraries a dynamic ELF needs, as ldd resolves them (empty for static binaries). */
export function sharedLibs(bin: string): string[] {
  const r = spawnSync("ldd", [bin], { encoding: "utf8" });
  if (r.status !== 0) return []; // "not a dynamic executable"
  const out = new Set<string>();
  for (const m of r.stdout.matchAll(/(\/[^\s)]+)/g)) if (!m[1].startsWith("/proc")) out.add(m[1]);
  return [...out];
}

/** Load order of modules and everything they depend on, from modules.dep. */
export function moduleOrder(depText: string, wanted: string[]): { name: string; rel: string }[] {
  const deps = new Map<string, string[]>();
  const relOf = new Map<string, string>();
  const nameOf = (rel: string) => path.basename(rel).replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
  for (const line of depText.split("\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const rel = line.slice(0, i).trim();
    const n = nameOf(rel);
    relOf.set(n, rel);
    deps.set(n, line.slice(i + 1).trim().split(/\s+/).filter(Boolean).map(nameOf));
  }
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string, chain: string[]) => {
    if (seen.has(n)) return;
    if (!relOf.has(n)) throw new Error(`kernel module ${n} is not in modules.dep${chain.length ? ` (needed by ${chain.join(" <- ")})` : ""}`);
    seen.add(n);
    for (const d of deps.get(n) ?? []) visit(d, [n, ...chain]);
    order.push(n);
  };
  for (const w of wanted) visit(w.replace(/-/g, "_"), []);
  return order.map((name) => ({ name, rel: relOf.get(name)! }));
}

/** The compiled files a program needs: its relative require() closure inside dist. */
export function requireClosure(distDir: string, entry: string): string[] {
  const out = new Set<string>();
  const todo = [path.resolve(distDir, entry)];
  while (todo.length) {
    const f = todo.pop()!;
    if (out.has(f)) continue;
    out.add(f);
    const src = fs.readFileSync(f, "utf8");
    for (const m of src.matchAll(/require\("([^"]+)"\)/g)) {
      const spec = m[1];
      if (!spec.startsWith(".")) {
        if (spec.startsWith("node:") || isBuiltin(spec)) continue;
        throw new Error(`${path.relative(distDir, f)} requires the package ${spec}: the guest image carries no node_modules`);
      }
      const base = path.resolve(path.dirname(f), spec);
      const hit = [base, base + ".js", path.join(base, "index.js")].find((p) => fs.existsSync(p) && fs.statSync(p).isFile());
      if (hit) todo.push(hit);
      // a require the program builds at run time (the native addon) is added by the caller
    }
  }
  return [...out].sort();
}

function isBuiltin(spec: string): boolean {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require("node:module") as typeof import("node:module")).builtinModules.includes(spec);
}

/** Every file that goes into the image, with its destination, and the modules /init loads. */
export function collectInputs(o: { node: string; busybox: string; distDir: string; nativeAddon: string; kernel: KernelSource; runc: string | null; crun?: string | null }): { files: FileInput[]; modules: string[] } {
  const files: FileInput[] = [];
  const libs = new Set<string>();
  files.push({ dest: "bin/busybox", src: o.busybox, mode: 0o755 });
  sharedLibs(o.busybox).forEach((l) => libs.add(l));
  files.push({ dest: "usr/bin/node", src: o.node, mode: 0o755, strip: true });
  sharedLibs(o.node).forEach((l) => libs.add(l));
  if (o.runc) {
    files.push({ dest: "usr/sbin/runc", src: o.runc, mode: 0o755 });
    sharedLibs(o.runc).forEach((l) => libs.add(l));
  }
  if (o.crun) {
    files.push({ dest: GUEST_CRUN, src: o.crun, mode: 0o755 });
    sharedLibs(o.crun).forEach((l) => libs.add(l));
  }
  // One bundled file (no module resolution in the guest), its startup snapshot's entry and the addon.
  for (const a of agentFiles(o.distDir, o.nativeAddon)) {
    if (!fs.existsSync(a.path)) throw new Error(`${a.path} is missing: run "npm run build"`);
    if (a.path.endsWith(".js")) requireClosure(o.distDir, path.relative(o.distDir, a.path)); // it must need no package the guest lacks
    files.push({ dest: a.dest, src: a.path, mode: a.mode, agent: true });
  }
  sharedLibs(o.nativeAddon).forEach((l) => libs.add(l));
  for (const l of libs) files.push({ dest: l.slice(1), src: fs.realpathSync(l), mode: 0o755 });
  const modulesDir = o.kernel.modulesDir;
  if (!modulesDir) return { files, modules: [] }; // everything built in
  const mods = moduleOrder(fs.readFileSync(path.join(modulesDir, "modules.dep"), "utf8"), GUEST_MODULES);
  for (const m of mods) {
    if (!m.rel.endsWith(".ko")) throw new Error(`module ${m.rel} is compressed; shimlab's image builder takes plain .ko files (Debian 12's)`);
    files.push({ dest: `lib/modules/${m.name}.ko`, src: path.join(modulesDir, m.rel) });
  }
  return { files, modules: mods.map((m) => m.name) };
}
