#!/usr/bin/env node
// Builds native/shimlab.c into native/build/shimlab.node with the system C
// compiler against Node's own headers. A Node-API addon links against nothing,
// so no node-gyp download or headers tarball is needed. Also native/sandbox-init.c,
// static, into native/build/sandbox-init: a shim-sandboxer pod's namespace holder.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const src = path.join(repo, "native", "shimlab.c");
const out = path.join(repo, "native", "build", "shimlab.node");

const candidates = [
  process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, "include", "node"),
  path.join(path.dirname(path.dirname(process.execPath)), "include", "node"),
  "/usr/include/node",
  "/usr/local/include/node",
].filter(Boolean);
const include = candidates.find((d) => fs.existsSync(path.join(d, "node_api.h")));
if (!include) {
  console.error(`build-native: node_api.h not found in ${candidates.join(", ")}`);
  process.exit(1);
}
const fresh = (o, s) => fs.existsSync(o) && fs.statSync(o).mtimeMs > fs.statSync(s).mtimeMs;
fs.mkdirSync(path.dirname(out), { recursive: true });
const cc = process.env.CC || "cc";
if (!fresh(out, src)) {
  const args = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fPIC", "-shared", `-I${include}`, "-DNODE_GYP_MODULE_NAME=shimlab", src, "-o", out, "-lpthread"];
  execFileSync(cc, args, { stdio: "inherit" });
  console.log(`build-native: ${path.relative(repo, out)}`);
}
// Static: it runs inside a pod's rootfs made of nothing else, on the host or in a guest.
const initSrc = path.join(repo, "native", "sandbox-init.c");
const initOut = path.join(repo, "native", "build", "sandbox-init");
if (!fresh(initOut, initSrc)) {
  execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-static", initSrc, "-o", initOut], { stdio: "inherit" });
  execFileSync("strip", [initOut], { stdio: "inherit" });
  console.log(`build-native: ${path.relative(repo, initOut)}`);
}
// A warm QEMU VM's keeper (`shimlab factory`): its parent for the VM's whole life, so that the
// VM ends with its holder and not with the factory that booted it. Static: small and self-contained.
const keeperSrc = path.join(repo, "native", "vm-keeper.c");
const keeperOut = path.join(repo, "native", "build", "vm-keeper");
if (!fresh(keeperOut, keeperSrc)) {
  execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-static", "-s", keeperSrc, "-o", keeperOut], { stdio: "inherit" });
  console.log(`build-native: ${path.relative(repo, keeperOut)}`);
}
// The shim binary containerd runs, bin/containerd-shim-shimlab-v2 (native/oneshot.c):
// `start` and `delete` without Node in the usual case, everything else handed to
// bin/containerd-shim-shimlab-v2.js. Static, because a dynamic link costs a fair
// part of its ~1 ms.
const oneshotSrc = path.join(repo, "native", "oneshot.c");
const oneshotOut = path.join(repo, "bin", "containerd-shim-shimlab-v2");
if (!fresh(oneshotOut, oneshotSrc)) {
  execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-static", "-s", oneshotSrc, "-o", oneshotOut], { stdio: "inherit" });
  console.log(`build-native: ${path.relative(repo, oneshotOut)}`);
}
