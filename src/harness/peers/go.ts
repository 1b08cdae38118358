// Go programs the suite runs as peers, built from the Go module proxy and
// cached: upstream programs by `go install module@version`, and the suite's
// own small Go modules (test/interop, test/peers/*) keyed by their sources.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { cached, peersCacheDir, safeName } from "./cache";
import { which } from "../../util/which";

const run = promisify(execFile);

/** The go command: on PATH, or where Debian's and go.dev's installs put it (CI shells do not read ~/.bashrc). */
export function goBinary(): string {
  const found = which("go", [...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/local/go/bin", "/usr/lib/go/bin"]);
  if (!found) throw new Error("Go is needed to build the suite's Go peers (critest, crictl, runc, the ttrpc interop programs): no `go` on PATH or in /usr/local/go/bin");
  return found;
}

function goEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const go = goBinary();
  return {
    ...process.env,
    PATH: `${path.dirname(go)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    // The toolchain on the machine; never a download because a go.mod asks for a newer one.
    GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? "local",
    GOFLAGS: [process.env.GOFLAGS, "-buildvcs=false"].filter(Boolean).join(" "),
    ...extra,
  };
}

async function go(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv }): Promise<void> {
  await run(goBinary(), args, { cwd: o.cwd, env: goEnv(o.env), maxBuffer: 64 << 20 }).catch((e) => {
    throw new Error(`go ${args.join(" ")} failed${o.cwd ? ` in ${o.cwd}` : ""}:\n${String(e.stderr || e.message).trim().split("\n").slice(-30).join("\n")}`);
  });
}

let goVersionCache: string | null = null;
/** The toolchain's version (go1.26.x), asked once: build caches are keyed by it. */
export async function goVersion(): Promise<string> {
  if (!goVersionCache) goVersionCache = (await run(goBinary(), ["env", "GOVERSION"])).stdout.trim();
  return goVersionCache;
}

export interface GoInstallOptions {
  /** Build tags, as the upstream Makefile sets them (runc: seccomp). */
  tags?: string[];
  cgo?: boolean;
  /** -ldflags, as the upstream Makefile sets them (e.g. -X of a version variable). */
  ldflags?: string;
}

/** `go install <pkg>@<version>`; returns the binary's path. pkg is a package path inside module. */
export async function goInstall(pkg: string, version: string, o: GoInstallOptions = {}): Promise<string> {
  const name = path.basename(pkg);
  const ld = o.ldflags ? "+ld" + crypto.createHash("sha256").update(o.ldflags).digest("hex").slice(0, 8) : "";
  const key = safeName(`${pkg}@${version}${o.tags?.length ? "+" + o.tags.join(",") : ""}${ld}-${await goVersion()}`);
  const dir = await cached(path.join(peersCacheDir(), "go", key), async (tmp) => {
    const args = ["install", ...(o.tags?.length ? ["-tags", o.tags.join(",")] : []), ...(o.ldflags ? ["-ldflags", o.ldflags] : []), `${pkg}@${version}`];
    await go(args, { cwd: tmp, env: { GOBIN: path.join(tmp, "bin"), CGO_ENABLED: o.cgo === false ? "0" : "1" } });
  });
  return path.join(dir, "bin", name);
}

/** A hash of a local module's go.mod, go.sum and Go sources (not its testdata or build output). */
export function moduleDigest(moduleDir: string): string {
  const h = crypto.createHash("sha256");
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== "testdata" && !e.name.startsWith(".")) walk(p);
      } else if (/\.(go|mod|sum|proto)$/.test(e.name)) {
        h.update(path.relative(moduleDir, p) + "\0");
        h.update(fs.readFileSync(p));
      }
    }
  };
  walk(moduleDir);
  return h.digest("hex").slice(0, 16);
}

export interface GoBuildOptions {
  /** The package to build, relative to the module ("./cmd/x") or an import path of a dependency. */
  pkg: string;
  /** The binary's file name. */
  output: string;
  /** `go test -c` instead of `go build` (critest is a test binary). */
  test?: boolean;
  tags?: string[];
  /** -ldflags, as the upstream Makefile sets them (e.g. -X of a version variable). */
  ldflags?: string;
}

/** Builds a package of a local Go module; cached by the module's sources and the Go version. */
export async function goBuild(moduleDir: string, o: GoBuildOptions): Promise<string> {
  const flagsDigest = crypto.createHash("sha256").update(JSON.stringify([o.tags ?? [], o.ldflags ?? ""])).digest("hex").slice(0, 8);
  const key = safeName(`${path.basename(moduleDir)}-${o.output}-${moduleDigest(moduleDir)}-${flagsDigest}-${await goVersion()}`);
  const dir = await cached(path.join(peersCacheDir(), "go-local", key), async (tmp) => {
    const out = path.join(tmp, o.output);
    const flags = [...(o.tags?.length ? ["-tags", o.tags.join(",")] : []), ...(o.ldflags ? ["-ldflags", o.ldflags] : [])];
    await go(o.test ? ["test", "-c", ...flags, "-o", out, o.pkg] : ["build", ...flags, "-o", out, o.pkg], { cwd: moduleDir });
  });
  return path.join(dir, o.output);
}

/** `go mod download module@version`: the module's source directory in Go's (read-only) module cache. */
export async function goDownload(module: string, version: string): Promise<string> {
  const { stdout } = await run(goBinary(), ["mod", "download", "-json", `${module}@${version}`], { env: goEnv(), maxBuffer: 16 << 20 }).catch((e) => {
    throw new Error(`go mod download ${module}@${version} failed:\n${String(e.stdout || e.stderr || e.message).trim()}`);
  });
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (!dir) throw new Error(`go mod download ${module}@${version} named no directory`);
  return dir;
}

/** A go command in a module's own directory (its go.mod and replace directives rule), cgo on. */
export function goBuildIn(moduleDir: string, args: string[]): Promise<void> {
  return go(args, { cwd: moduleDir, env: { CGO_ENABLED: "1" } });
}
