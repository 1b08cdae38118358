#!/usr/bin/env node
// Builds native/shimlab.c into native/build/shimlab.node with the system C
// compiler against Node's own headers. A Node-API addon links against nothing,
// so no node-gyp download or headers tarball is needed.
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
if (fs.existsSync(out) && fs.statSync(out).mtimeMs > fs.statSync(src).mtimeMs) {
  process.exit(0);
}
fs.mkdirSync(path.dirname(out), { recursive: true });
const cc = process.env.CC || "cc";
const args = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fPIC", "-shared", `-I${include}`, "-DNODE_GYP_MODULE_NAME=shimlab", src, "-o", out, "-lpthread"];
execFileSync(cc, args, { stdio: "inherit" });
console.log(`build-native: ${path.relative(repo, out)}`);
