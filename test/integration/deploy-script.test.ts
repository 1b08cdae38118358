// The installer DaemonSet's entrypoint (deploy/shimlab-deploy.sh) run here
// as the pod would run it: the "host" is a temporary directory, the API server
// a local HTTPS server checking the service account's token, and nsenter a
// stand-in that records the containerd restart it was asked for.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { execFileSync, spawn } from "node:child_process";
import type { AddressInfo } from "node:net";
import { parse } from "smol-toml";
import { REPO_ROOT } from "../../src/harness/containerd";
import { runCommand } from "../../src/harness/shim-runner";
import { missing } from "../helpers/env";

const skip = missing("curl", "openssl");
const SCRIPT = path.join(REPO_ROOT, "deploy", "shimlab-deploy.sh");

describe.skipIf(skip)("deploy/shimlab-deploy.sh", () => {
  let dir: string;
  let server: https.Server;
  const patches: { node: string; auth: string; type: string; body: any }[] = [];
  let env: NodeJS.ProcessEnv;
  let original: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-deploy-"));
    const sa = path.join(dir, "sa");
    fs.mkdirSync(sa);
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kubernetes", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", path.join(dir, "key.pem"), "-out", path.join(sa, "ca.crt")], { stdio: "ignore" });
    fs.writeFileSync(path.join(sa, "token"), "tok-123");
    server = https.createServer({ key: fs.readFileSync(path.join(dir, "key.pem")), cert: fs.readFileSync(path.join(sa, "ca.crt")) }, (req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        const m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(req.url ?? "");
        if (req.method !== "PATCH" || !m) {
          res.writeHead(404).end();
          return;
        }
        patches.push({ node: m[1], auth: String(req.headers.authorization), type: String(req.headers["content-type"]), body: JSON.parse(body) });
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    // The host: containerd's config as Debian ships it.
    original = fs.readFileSync(path.join(REPO_ROOT, "test", "fixtures", "containerd", "config-v2-debian.toml"), "utf8");
    fs.mkdirSync(path.join(dir, "host", "etc", "containerd"), { recursive: true });
    fs.writeFileSync(path.join(dir, "host", "etc", "containerd", "config.toml"), original);
    // nsenter records what it would have run on the host.
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "nsenter"), `#!/bin/sh\necho "$@" >> ${path.join(dir, "nsenter.log")}\n`, { mode: 0o755 });
    env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      NODE_NAME: "node-a",
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: String((server.address() as AddressInfo).port),
      SHIMLAB_HOST_ROOT: path.join(dir, "host"),
      SHIMLAB_SERVICEACCOUNT_DIR: sa,
      SHIMLAB_CLI: `${process.execPath} ${path.join(REPO_ROOT, "bin", "shimlab")}`,
    };
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("install: copies shimlab onto the host, edits containerd's config, restarts it, labels the node, then waits until TERM", async () => {
    const child = spawn(SCRIPT, ["install"], { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    try {
      for (let i = 0; i < 300 && !out.includes("shimlab installed"); i++) await new Promise((r) => setTimeout(r, 100));
      expect(patches, out).toHaveLength(1);
      expect(patches[0]).toEqual({ node: "node-a", auth: "Bearer tok-123", type: "application/merge-patch+json", body: { metadata: { labels: { "shimlab.io/runtime": "true" } } } });
      const host = env.SHIMLAB_HOST_ROOT!;
      const launcher = fs.readFileSync(path.join(host, "opt", "shimlab", "bin", "containerd-shim-shimlab-v2"), "utf8");
      expect(launcher).toContain("/opt/shimlab/lib/shimlab/node");
      expect(fs.existsSync(path.join(host, "opt", "shimlab", "lib", "shimlab", "dist", "shim", "main.js"))).toBe(true);
      const cfg = parse(fs.readFileSync(path.join(host, "etc", "containerd", "config.toml"), "utf8")) as any;
      expect(cfg.plugins["io.containerd.grpc.v1.cri"].containerd.runtimes.shimlab.runtime_path).toBe("/opt/shimlab/bin/containerd-shim-shimlab-v2");
      expect(fs.readFileSync(path.join(dir, "nsenter.log"), "utf8")).toBe("--target 1 --mount --uts --ipc --net --pid -- systemctl restart containerd\n");
      expect(out).toContain("shimlab installed on node-a");
      // Still running: the pod lives as long as the installation.
      expect(child.exitCode).toBeNull();
      // As the kubelet stops a container: TERM to its first process only.
      process.kill(child.pid!, "SIGTERM");
      expect(await exited).toBe(0);
      // Nothing of the script's is left (its sleep included).
      await new Promise((r) => setTimeout(r, 300));
      // ps exits 1 when it lists nothing.
      const left = execFileSync("sh", ["-c", `ps -o pid=,stat=,args= -g ${child.pid} || true`], { encoding: "utf8" }).trim();
      expect(left).toBe("");
    } finally {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  });

  it("cleanup (preStop): unlabels the node, uninstalls and restarts containerd again", async () => {
    const r = await runCommand(SCRIPT, ["cleanup"], { env, timeoutMs: 60_000 });
    expect(r.code, r.combined.toString()).toBe(0);
    expect(patches.at(-1)?.body).toEqual({ metadata: { labels: { "shimlab.io/runtime": null } } });
    const host = env.SHIMLAB_HOST_ROOT!;
    expect(fs.readFileSync(path.join(host, "etc", "containerd", "config.toml"), "utf8")).toBe(original);
    expect(fs.existsSync(path.join(host, "opt", "shimlab", "bin", "containerd-shim-shimlab-v2"))).toBe(false);
    expect(fs.existsSync(path.join(host, "opt", "shimlab", "lib", "shimlab"))).toBe(false);
    expect(fs.readFileSync(path.join(dir, "nsenter.log"), "utf8").trim().split("\n")).toHaveLength(2);
  });
});
