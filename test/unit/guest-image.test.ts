// The guest image builder (src/guest-image) and the manifest a sandbox reads
// instead of building (src/hypervisor/qemu/image-manifest.ts): the builder's
// pieces (module order, require closure, cpio, PVH note, the guest kernel's
// fragment), the sandbox's staleness check, and the line between the two.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { moduleOrder, requireClosure } from "../../src/guest-image/inputs";
import { CpioWriter, S_IFDIR, S_IFREG } from "../../src/guest-image/cpio";
import { findKernel, hasPvhNote } from "../../src/guest-image/kernel";
import { buildGuestKernel, findGuestKernel, findKernelSources, GUEST_KERNEL_PREFIX, guestConfigPath, guestKernel, kernelDirPrefix, missingBuildTools, parseFragment, unmetSettings } from "../../src/guest-image/guest-kernel";
import { writeManifest } from "../../src/guest-image/manifest";
import { pruneImages } from "../../src/guest-image/cache";
import type { ImageRecord } from "../../src/guest-image/image";
import { agentFiles, buildCommand, findImage, GUEST_CRUN, IMAGE_FORMAT, manifestPath, sha256Of, staleness, type ImageManifest, type ImageVariant } from "../../src/hypervisor/qemu/image-manifest";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "guest-image-unit-"));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

describe("guest image pieces", () => {
  it("prunes old images but keeps the newest, the current one and any a running QEMU shares /usr from", async () => {
    const images = tmpdir();
    const t = Date.now() / 1000;
    for (const [i, n] of ["a", "b", "c", "d", "cur"].entries()) {
      fs.mkdirSync(path.join(images, n, "usr"), { recursive: true });
      fs.utimesSync(path.join(images, n), t - 100 + i, t - 100 + i);
    }
    // a stand-in for QEMU: its command line names the oldest image's /usr, as -fsdev ...,path=<image>/usr does
    const { spawn } = await import("node:child_process");
    const qemu = spawn("sh", ["-c", "sleep 30", "qemu", `-fsdev local,id=usr,path=${images}/a/usr,readonly=on`], { stdio: "ignore" });
    cleanups.push(() => qemu.kill("SIGKILL"));
    for (let i = 0; i < 100 && !fs.readFileSync(`/proc/${qemu.pid}/cmdline`, "utf8").includes("path="); i++) await new Promise((r) => setTimeout(r, 10));
    pruneImages(images, 2, "cur"); // two kept: the current one and the newest other
    expect(fs.readdirSync(images).sort()).toEqual(["a", "cur", "d"]);
  });

  it("orders modules after their dependencies, from modules.dep", () => {
    const dep = [
      "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko kernel/fs/fscache/fscache.ko",
      "kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko",
      "kernel/fs/netfs/netfs.ko:",
      "kernel/net/9p/9pnet.ko:",
      "kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
      "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio_ring.ko:",
      "kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
    ].join("\n");
    const order = moduleOrder(dep, ["virtio_console", "9pnet_virtio", "9p"]).map((m) => m.name);
    const before = (a: string, b: string) => expect(order.indexOf(a), `${a} before ${b}`).toBeLessThan(order.indexOf(b));
    before("virtio_ring", "virtio");
    before("virtio", "virtio_console");
    before("9pnet", "9pnet_virtio");
    before("netfs", "fscache");
    before("fscache", "9p");
    expect(new Set(order).size).toBe(order.length);
    expect(() => moduleOrder(dep, ["vsock"])).toThrow(/vsock is not in modules.dep/);
  });

  it("collects a program's relative require closure and refuses packages the guest lacks", () => {
    const d = tmpdir();
    fs.mkdirSync(path.join(d, "a/lib"), { recursive: true });
    fs.writeFileSync(path.join(d, "a/main.js"), 'const x = require("./lib"); const fs = require("node:fs"); require("path");');
    fs.writeFileSync(path.join(d, "a/lib/index.js"), 'require("../util");');
    fs.writeFileSync(path.join(d, "a/util.js"), "");
    fs.writeFileSync(path.join(d, "a/unused.js"), "");
    expect(requireClosure(d, "a/main.js").map((f) => path.relative(d, f))).toEqual(["a/lib/index.js", "a/main.js", "a/util.js"]);
    fs.writeFileSync(path.join(d, "a/util.js"), 'require("smol-toml");');
    expect(() => requireClosure(d, "a/main.js")).toThrow(/requires the package smol-toml/);
  });

  it("writes a newc archive that cpio(1) reads back", async () => {
    const d = tmpdir();
    const out = fs.createWriteStream(path.join(d, "x.cpio"));
    const w = new CpioWriter(out);
    await w.add({ name: "bin", mode: S_IFDIR | 0o755 });
    await w.add({ name: "bin/hello", mode: S_IFREG | 0o755, data: Buffer.from("hi\n") });
    await w.add({ name: "odd", mode: S_IFREG | 0o644, data: Buffer.alloc(5, 0x61) });
    await w.finish();
    await new Promise((r) => out.end(r));
    expect(fs.statSync(path.join(d, "x.cpio")).size % 512).toBe(0);
    await expect(w.add({ name: "/abs", mode: S_IFREG })).rejects.toThrow(/relative/);
    const r = spawnSync("cpio", ["-it", "--quiet"], { input: fs.readFileSync(path.join(d, "x.cpio")) });
    if (r.error) return; // no cpio(1) here: the boot tests read the archive instead
    expect(r.stdout.toString().split("\n").filter(Boolean)).toEqual(["bin", "bin/hello", "odd"]);
  });

  it("finds the Xen PVH entry note QEMU needs to boot an ELF kernel", () => {
    const note = Buffer.alloc(12 + 4 + 4);
    note.writeUInt32LE(4, 0); // namesz
    note.writeUInt32LE(4, 4); // descsz
    note.writeUInt32LE(18, 8); // XEN_ELFNOTE_PHYS32_ENTRY
    note.write("Xen\0", 12);
    expect(hasPvhNote(Buffer.concat([Buffer.alloc(64), note]))).toBe(true);
    note.writeUInt32LE(17, 8);
    expect(hasPvhNote(Buffer.concat([Buffer.alloc(64), note]))).toBe(false);
  });
});

describe("shimlab's guest kernel", () => {
  it("kernel/guest.config parses: every line a setting, nothing as a module, no duplicates", () => {
    const text = fs.readFileSync(guestConfigPath(), "utf8");
    const f = parseFragment(text);
    const lines = text.split("\n").filter((l) => /^CONFIG_/.test(l));
    expect(f.size).toBe(lines.length);
    // what the guest cannot boot or run containers without
    for (const k of ["CONFIG_PVH", "CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_MMIO", "CONFIG_VIRTIO_CONSOLE", "CONFIG_9P_FS", "CONFIG_NET_9P_VIRTIO", "CONFIG_RD_LZ4", "CONFIG_DEVTMPFS", "CONFIG_BINFMT_SCRIPT", "CONFIG_MEMCG", "CONFIG_PID_NS", "CONFIG_SECCOMP_FILTER", "CONFIG_CGROUP_BPF"])
      expect(f.get(k), k).toBe("y");
    expect(f.get("CONFIG_MODULES")).toBeUndefined();
  });

  it("a fragment's bad line is reported with its line number; modules are refused", () => {
    expect(() => parseFragment("CONFIG_A=y\nCONFIG_B y\n")).toThrow(/guest.config:2: "CONFIG_B y"/);
    expect(() => parseFragment("CONFIG_VIRTIO_PCI=m\n")).toThrow(/no modules/);
    expect(parseFragment('# c\n# CONFIG_X is not set\nCONFIG_S="-a"\nCONFIG_N=64\n')).toEqual(new Map([["CONFIG_X", "n"], ["CONFIG_S", '"-a"'], ["CONFIG_N", "64"]]));
  });

  it("names the packages a build needs before it starts, not a failed make minutes in", async () => {
    const d = tmpdir();
    expect(missingBuildTools(d, d)).toEqual(["make", "gcc", "bc", "bison", "flex", "tar", "xz", "libelf's headers (gelf.h)"]);
    for (const b of ["make", "gcc", "bc", "bison", "flex", "tar", "xz"]) fs.writeFileSync(path.join(d, b), "");
    fs.writeFileSync(path.join(d, "gelf.h"), "");
    expect(missingBuildTools(d, d)).toEqual([]);
    await expect(buildGuestKernel({ cacheDir: d, source: path.join(d, "missing.tar.xz") })).rejects.toThrow();
    const src = path.join(d, "linux-source-6.1.tar.xz");
    fs.writeFileSync(src, "");
    const saved = process.env.PATH;
    process.env.PATH = path.join(d, "empty");
    try {
      await expect(buildGuestKernel({ cacheDir: d, source: src })).rejects.toThrow(/cannot build the guest kernel without make, gcc.*apt-get install linux-source-6.1 gcc make/);
    } finally {
      process.env.PATH = saved;
    }
  });

  it("names the settings Kconfig dropped, so a missing dependency fails the build instead of the boot", () => {
    const frag = parseFragment("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=\"x\"\n");
    expect(unmetSettings(frag, "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_D=\"x\"\n")).toEqual(["CONFIG_B=y (got not set)"]);
    expect(unmetSettings(frag, "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\nCONFIG_D=\"y\"\n")).toEqual(["CONFIG_C=n (got y)", 'CONFIG_D="x" (got "y")']);
  });

  it("is found in the cache by the fragment it was built from; an image build falls back to Debian's only on auto", () => {
    const cache = tmpdir();
    const cfg = path.join(cache, "guest.config");
    fs.writeFileSync(cfg, "CONFIG_PVH=y\n");
    expect(findGuestKernel(cache, cfg)).toBeNull();
    // a build for another fragment does not count
    const other = path.join(cache, "kernels", `${GUEST_KERNEL_PREFIX}000000000000-00000000`);
    fs.mkdirSync(other, { recursive: true });
    fs.writeFileSync(path.join(other, "vmlinux"), "");
    fs.writeFileSync(path.join(other, "kernel.json"), JSON.stringify({ version: "old", source: "s", buildMs: 1 }));
    expect(findGuestKernel(cache, cfg)).toBeNull();
    const mine = path.join(cache, "kernels", `${kernelDirPrefix(cfg)}12345678`);
    fs.mkdirSync(mine, { recursive: true });
    fs.writeFileSync(path.join(mine, "kernel.json"), JSON.stringify({ version: "6.1.192-shimlab", source: "s", buildMs: 1 }));
    expect(findGuestKernel(cache, cfg)).toBeNull(); // no vmlinux: a build that did not finish
    fs.writeFileSync(path.join(mine, "vmlinux"), "");
    expect(findGuestKernel(cache, cfg)).toEqual({ path: path.join(mine, "vmlinux"), version: "6.1.192-shimlab", modulesDir: null, elf: true });
    expect(() => guestKernel("shimlab", path.join(cache, "empty"))).toThrow(/shimlab image build --kernel/);
    if (findKernel()) expect(guestKernel("auto", path.join(cache, "empty")).modulesDir).not.toBeNull(); // Debian's, with its modules
    expect(findKernelSources(path.join(cache, "none"))).toEqual([]);
    fs.writeFileSync(path.join(cache, "linux-source-6.1.tar.xz"), "");
    fs.writeFileSync(path.join(cache, "linux-source-6.10.tar.xz"), "");
    fs.writeFileSync(path.join(cache, "linux-source-6.1.tar.xz.sig"), "");
    expect(findKernelSources(cache).map((p) => path.basename(p))).toEqual(["linux-source-6.1.tar.xz", "linux-source-6.10.tar.xz"]);
  });
});

/** A fake image and its inputs in a temp dir: an agent (dist and addon), busybox and a kernel. */
function fakeImage(layout: "share" | "initramfs" = "share") {
  const d = tmpdir();
  const cache = path.join(d, "cache");
  const dist = path.join(d, "dist");
  fs.mkdirSync(path.join(dist, "bundle"), { recursive: true });
  fs.writeFileSync(path.join(dist, "bundle", "mock-agent.js"), "agent v1");
  fs.writeFileSync(path.join(dist, "bundle", "mock-agent-snapshot.js"), "snapshot entry v1");
  const addon = path.join(d, "shimlab.node");
  fs.writeFileSync(addon, "addon");
  const busybox = path.join(d, "busybox");
  fs.writeFileSync(busybox, "busybox 1");
  const kernel = path.join(d, "vmlinux");
  fs.writeFileSync(kernel, "kernel");
  const dir = path.join(cache, "images", "0123456789abcdef0123");
  fs.mkdirSync(path.join(dir, "usr"), { recursive: true });
  fs.writeFileSync(path.join(dir, "initrd.cpio.lz4"), "initramfs bytes");
  const agent = agentFiles(dist, addon);
  const files = [...agent.map((a) => ({ dest: a.dest, src: a.path, agent: true })), { dest: "bin/busybox", src: busybox }];
  const inputs: Record<string, string> = { kernel: sha256Of(kernel) };
  for (const f of files) inputs[f.dest] = sha256Of(f.src);
  const record: ImageRecord = {
    key: "0123456789abcdef0123",
    dir,
    kernel,
    initrd: path.join(dir, "initrd.cpio.lz4"),
    usrDir: layout === "share" ? path.join(dir, "usr") : null,
    layout,
    kernelVersion: "6.1.0-test",
    initrdBytes: fs.statSync(path.join(dir, "initrd.cpio.lz4")).size,
    compression: "lz4",
    runc: true,
    modules: [],
    inputs,
    kernelArtifact: { path: kernel, size: fs.statSync(kernel).size, sha256: sha256Of(kernel) },
    initrdSha256: sha256Of(path.join(dir, "initrd.cpio.lz4")),
    usrTree: layout === "share" ? { files: 0, bytes: 0, sha256: "e3b0" } : null,
    builtAt: "2026-12-06T10:00:00.000Z",
  };
  const variant: ImageVariant = { kernel: "shimlab", layout, runc: true };
  const write = (v = variant) => writeManifest(cache, { ...record, runc: v.runc }, v, files, [{ dest: "kernel", src: kernel }]);
  const want = { cacheDir: cache, kernels: ["shimlab", "debian"] as ("shimlab" | "debian")[], layout, runc: true, agent };
  return { d, cache, dist, addon, busybox, kernel, record, variant, write, want };
}

describe("the manifest a sandbox reads instead of building", () => {
  it("missing: the error names the command that builds the image, with the cache it looked in", () => {
    const f = fakeImage();
    expect(findImage(f.want)).toEqual({
      error: `no guest image in ${f.cache} (guest_kernel = "auto", guest_usr = "share", guest_runtime = "runc"): run \`shimlab image build --cache-dir ${f.cache}\``,
    });
  });

  it("fresh: the manifest the build wrote, naming the image's kernel, initramfs and /usr", () => {
    const f = fakeImage();
    const written = f.write();
    const found = findImage(f.want);
    expect("manifest" in found).toBe(true);
    const m = (found as { manifest: ImageManifest }).manifest;
    expect(manifestPath(f.cache, f.variant, m.agentId)).toBe(written);
    expect(m).toMatchObject({ key: f.record.key, imageFormat: IMAGE_FORMAT, kernel: { path: f.kernel }, initrd: { path: f.record.initrd }, usr: { path: f.record.usrDir } });
    expect(m.inputs.map((i) => i.dest)).toEqual(["kernel", "bin/busybox"]);
    expect(staleness(m)).toBeNull();
  });

  it("stale once the mock agent is rebuilt: the error names the file that changed and the command", () => {
    const f = fakeImage();
    f.write();
    fs.writeFileSync(path.join(f.dist, "bundle", "mock-agent.js"), "agent v2");
    const r = findImage(f.want);
    expect("error" in r && r.error).toMatch(new RegExp(`^the guest image in ${f.cache} .* is stale: ${path.join(f.dist, "bundle", "mock-agent.js")} changed since it was built \\(2026-12-06T10:00:00.000Z\\): run \`shimlab image build --cache-dir ${f.cache}\`$`));
    // Rebuilt with the new agent: fresh again.
    fs.writeFileSync(path.join(f.dist, "bundle", "mock-agent.js"), "agent v1");
    expect("manifest" in findImage(f.want)).toBe(true);
  });

  it("stale when a system input or an artifact changed; a touched file with the same content is not", () => {
    const f = fakeImage();
    f.write();
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(f.busybox, later, later);
    expect("manifest" in findImage(f.want)).toBe(true); // stat differs, content does not
    fs.writeFileSync(f.busybox, "busybox 2"); // same size, other bytes
    expect("error" in findImage(f.want) && (findImage(f.want) as { error: string }).error).toMatch(
      new RegExp(`the shimlab-share-runc image \\(built .*\\) is stale: ${f.busybox} \\(bin/busybox\\) changed since it was built: run \`shimlab image build --cache-dir`),
    );
    fs.writeFileSync(f.busybox, "busybox 1");
    fs.rmSync(f.record.initrd);
    expect((findImage(f.want) as { error: string }).error).toMatch(/is stale: its initramfs .*initrd\.cpio\.lz4 is gone/);
  });

  it("stale when the guest's /init or the image format is not this shimlab's", () => {
    const f = fakeImage();
    const file = f.write();
    const m = JSON.parse(fs.readFileSync(file, "utf8")) as ImageManifest;
    expect(staleness({ ...m, modules: ["virtio_pci"] })).toMatch(/the guest's \/init changed/);
    expect(staleness({ ...m, imageFormat: IMAGE_FORMAT - 1 })).toMatch(/another version of the builder/);
  });

  it("the variant a [qemu] table asks for: kernel, layout and runc", () => {
    const f = fakeImage();
    f.write({ kernel: "shimlab", layout: "share", runc: false });
    // guest_runtime = "runc" needs runc in the guest; "host" takes either.
    expect((findImage(f.want) as { error: string }).error).toMatch(/^no guest image/);
    expect("manifest" in findImage({ ...f.want, runc: false })).toBe(true);
    f.write();
    expect((findImage({ ...f.want, kernels: ["debian"] }) as { error: string }).error).toMatch(/guest_kernel = "debian".*run `shimlab image build --debian-kernel --cache-dir/);
    expect((findImage({ ...f.want, layout: "initramfs" }) as { error: string }).error).toMatch(/run `shimlab image build --layout initramfs --cache-dir/);
    expect(buildCommand({ cacheDir: "/var/cache/shimlab", kernels: ["shimlab"], layout: "share" })).toBe("shimlab image build --kernel");
  });

  it("guest_runtime = \"crun\" takes the runc image only with crun in it, and says to install crun otherwise", () => {
    const f = fakeImage();
    f.write();
    expect((findImage({ ...f.want, crun: true }) as { error: string }).error).toMatch(
      new RegExp(`^the shimlab-share-runc image \\(built .*\\) holds no crun, which guest_runtime = "crun" needs: install crun \\(apt-get install crun\\): run \`shimlab image build --cache-dir ${f.cache}\`$`),
    );
    const crun = path.join(f.d, "crun");
    fs.writeFileSync(crun, "crun 1");
    const agent = agentFiles(f.dist, f.addon);
    const files = [...agent.map((a) => ({ dest: a.dest, src: a.path, agent: true })), { dest: "bin/busybox", src: f.busybox }, { dest: GUEST_CRUN, src: crun }];
    writeManifest(f.cache, f.record, f.variant, files, [{ dest: "kernel", src: f.kernel }]);
    expect("manifest" in findImage({ ...f.want, crun: true })).toBe(true);
    expect("manifest" in findImage(f.want)).toBe(true);
  });

  it("an unbuilt checkout: the error says so instead of blaming the image", () => {
    const f = fakeImage();
    f.write();
    fs.rmSync(path.join(f.dist, "bundle", "mock-agent-snapshot.js"));
    expect((findImage(f.want) as { error: string }).error).toMatch(/mock-agent-snapshot\.js is missing: run "npm run build"/);
  });
});

/** Relative imports of a TypeScript file, static and lazy, resolved to files. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\s+|import\(\s*|require\(\s*)"(\.{1,2}\/[^"]*)"/g)) {
    const base = path.resolve(path.dirname(file), m[1]);
    const hit = [`${base}.ts`, path.join(base, "index.ts"), base].find((p) => fs.existsSync(p) && fs.statSync(p).isFile());
    if (hit) out.push(hit);
  }
  return out;
}

function closure(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    todo.push(...importsOf(f));
  }
  return seen;
}

describe("the image builder is not the runtime", () => {
  const src = path.resolve(__dirname, "../../src");
  const builder = path.join(src, "guest-image") + path.sep;

  it("no file of the hypervisor layer imports the builder", () => {
    const files = fs
      .readdirSync(path.join(src, "hypervisor"), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".ts"))
      .map((f) => path.join(src, "hypervisor", f));
    expect(files.length).toBeGreaterThan(10);
    const edges = files.flatMap((f) => importsOf(f).filter((i) => i.startsWith(builder)).map((i) => `${path.relative(src, f)} -> ${path.relative(src, i)}`));
    expect(edges).toEqual([]);
  });

  it("nothing the shim loads, lazily or not, reaches the builder; the CLI's image command does", () => {
    const shim = closure(path.join(src, "shim", "main.ts"));
    // The walk follows the shim to the QEMU driver and the manifest it reads.
    expect(shim).toContain(path.join(src, "hypervisor", "qemu", "index.ts"));
    expect(shim).toContain(path.join(src, "hypervisor", "qemu", "image-manifest.ts"));
    expect([...shim].filter((f) => f.startsWith(builder)).map((f) => path.relative(src, f))).toEqual([]);
    expect([...closure(path.join(src, "cli", "commands", "image.ts"))].some((f) => f.startsWith(builder))).toBe(true);
  });
});
