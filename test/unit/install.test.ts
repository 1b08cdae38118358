// `shimlab install` / `uninstall` on sample containerd configs of both
// versions, into a temporary prefix: the runtime lands where CRI reads it,
// everything else (comments included, byte for byte) stays, a second install
// changes nothing, and uninstall gives the original file back.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { parse } from "smol-toml";
import { install, uninstall, readManifest, DEFAULT_SHIM_CONFIG, SANDBOXER_SHIM_NAME } from "../../src/install/install";
import { addRuntime, removeRuntime, ConfigEditError, BEGIN } from "../../src/install/containerd-config";

const REPO = path.resolve(__dirname, "..", "..");
const FIXTURES = path.join(REPO, "test", "fixtures", "containerd");

type T = Record<string, any>;
const get = (doc: T, keys: string[]) => keys.reduce<any>((o, k) => o?.[k], doc);
/** The parsed config as plain data, without the one runtime. */
function withoutRuntime(text: string, keys: string[]): unknown {
  const doc = JSON.parse(JSON.stringify(parse(text)));
  const parent = get(doc, keys.slice(0, -1));
  if (parent) delete parent[keys[keys.length - 1]];
  return doc;
}

const CASES = [
  { file: "config-v2.toml", version: 2, keys: ["plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "shimlab"] },
  { file: "config-v3.toml", version: 3, keys: ["plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "shimlab"] },
];

describe("shimlab install into a temporary prefix", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-install-"));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe.each(CASES)("containerd config version $version ($file)", ({ file, version, keys }) => {
    it("adds the runtime where CRI reads it, keeps the rest, is idempotent, and uninstall restores the file", () => {
      const original = fs.readFileSync(path.join(FIXTURES, file), "utf8");
      const cfg = path.join(dir, "config.toml");
      fs.writeFileSync(cfg, original, { mode: 0o600 });
      const prefix = path.join(dir, "prefix");

      const first = install({ prefix, containerdConfig: cfg, repoRoot: REPO });
      expect(first.steps.every((s) => s.changed)).toBe(true);
      const installed = fs.readFileSync(cfg, "utf8");
      const doc = parse(installed) as T;
      const rt = get(doc, keys);
      expect(rt.runtime_type).toBe("io.containerd.shimlab.v2");
      expect(rt.runtime_path).toBe(path.join(prefix, "bin", "containerd-shim-shimlab-v2"));
      expect(rt.options.ConfigPath).toBe(path.join(prefix, "share", "shimlab", "config.toml"));
      // Every other key is untouched, and the original text (comments and all) is still there verbatim.
      expect(withoutRuntime(installed, keys)).toEqual(withoutRuntime(original, keys));
      expect(installed.startsWith(original)).toBe(true);
      expect(installed).toContain(BEGIN);
      expect(fs.statSync(cfg).mode & 0o777).toBe(0o600);
      // The backup is the file as it was.
      expect(fs.readFileSync(cfg + ".shimlab-backup", "utf8")).toBe(original);
      // The launcher runs the shim; shimlab's default config is valid TOML.
      const launcher = path.join(prefix, "bin", "containerd-shim-shimlab-v2");
      expect(fs.statSync(launcher).mode & 0o111).toBe(0o111);
      expect(execFileSync(launcher, ["-v"], { encoding: "utf8" })).toContain("io.containerd.shimlab.v2");
      expect(parse(fs.readFileSync(rt.options.ConfigPath, "utf8"))).toEqual({ hypervisor: "none", agent: { runtime: "auto" } });
      expect(readManifest(prefix)?.containerdConfig).toBe(cfg);

      // Second install: nothing changes, not even a timestamp-free byte.
      const mtime = fs.statSync(cfg).mtimeMs;
      const second = install({ prefix, containerdConfig: cfg, repoRoot: REPO });
      expect(second.steps.filter((s) => s.changed)).toEqual([]);
      expect(fs.readFileSync(cfg, "utf8")).toBe(installed);
      expect(fs.statSync(cfg).mtimeMs).toBe(mtime);

      uninstall({ prefix });
      expect(fs.readFileSync(cfg, "utf8")).toBe(original);
      expect(fs.existsSync(launcher)).toBe(false);
      expect(fs.existsSync(cfg + ".shimlab-backup")).toBe(false);
      expect(fs.existsSync(path.join(prefix, "share", "shimlab"))).toBe(false);
      // And uninstalling twice is harmless.
      expect(uninstall({ prefix, containerdConfig: cfg }).filter((s) => s.changed)).toEqual([]);
    });

    it("updates its own block in place when the prefix changes, leaving text after it alone", () => {
      const original = fs.readFileSync(path.join(FIXTURES, file), "utf8");
      const entry = { name: "shimlab", runtimeType: "io.containerd.shimlab.v2", configPath: "/a/config.toml" };
      const once = addRuntime(original, entry).text;
      // An operator appends something after shimlab's block.
      const edited = once + "\n# added later\n[plugins.\"example.v1.extra\"]\n  address = \"/run/x.sock\"\n";
      const moved = addRuntime(edited, { ...entry, configPath: "/b/config.toml" });
      expect(moved.changed).toBe(true);
      expect(moved.text).toBe(edited.replace("/a/config.toml", "/b/config.toml"));
      expect(get(parse(moved.text) as T, [...keys, "options", "ConfigPath"])).toBe("/b/config.toml");
      const back = removeRuntime(moved.text);
      expect(back.text).toBe(original + "\n# added later\n[plugins.\"example.v1.extra\"]\n  address = \"/run/x.sock\"\n");
    });
  });

  it("keeps runc as CRI's default handler on a 1.6 config that names no runtime (1.6 would drop its built-in runc)", () => {
    const original = fs.readFileSync(path.join(FIXTURES, "config-v2-debian.toml"), "utf8");
    const keys = CASES[0].keys;
    const r = addRuntime(original, { name: "shimlab", runtimeType: "io.containerd.shimlab.v2", configPath: "/c.toml" });
    const doc = parse(r.text) as T;
    expect(get(doc, [...keys.slice(0, -1), "runc"])).toEqual({ runtime_type: "io.containerd.runc.v2" });
    expect(get(doc, keys).runtime_type).toBe("io.containerd.shimlab.v2");
    expect(r.text.startsWith(original)).toBe(true);
    expect(removeRuntime(r.text).text).toBe(original);
    // With runtimes already named, or on version 3, nothing but shimlab's runtime is added.
    for (const f of ["config-v2.toml", "config-v3.toml"]) {
      const t = addRuntime(fs.readFileSync(path.join(FIXTURES, f), "utf8"), { name: "shimlab", runtimeType: "x", configPath: "/c" }).text;
      expect(t.slice(t.indexOf(BEGIN))).not.toContain(".runc]");
    }
  });

  it("installs under a mounted host root (the DaemonSet's --root) with the host's paths in the configs", () => {
    const root = path.join(dir, "host");
    fs.mkdirSync(path.join(root, "etc", "containerd"), { recursive: true });
    const original = fs.readFileSync(path.join(FIXTURES, "config-v3.toml"), "utf8");
    fs.writeFileSync(path.join(root, "etc", "containerd", "config.toml"), original);
    install({ prefix: "/opt/shimlab", containerdConfig: "/etc/containerd/config.toml", repoRoot: REPO, root });
    const doc = parse(fs.readFileSync(path.join(root, "etc", "containerd", "config.toml"), "utf8")) as T;
    const rt = get(doc, CASES[1].keys);
    expect(rt.runtime_path).toBe("/opt/shimlab/bin/containerd-shim-shimlab-v2");
    expect(rt.options.ConfigPath).toBe("/opt/shimlab/share/shimlab/config.toml");
    expect(fs.existsSync(path.join(root, "opt", "shimlab", "bin", "containerd-shim-shimlab-v2"))).toBe(true);
    expect(fs.existsSync(path.join(root, "opt", "shimlab", "share", "shimlab", "config.toml"))).toBe(true);
    expect(readManifest("/opt/shimlab", root)?.backup).toBe("/etc/containerd/config.toml.shimlab-backup");
    uninstall({ prefix: "/opt/shimlab", root });
    expect(fs.readFileSync(path.join(root, "etc", "containerd", "config.toml"), "utf8")).toBe(original);
    expect(fs.existsSync(path.join(root, "opt", "shimlab", "bin", "containerd-shim-shimlab-v2"))).toBe(false);
    expect(fs.existsSync("/opt/shimlab/share/shimlab/install.json")).toBe(false);
  });

  it("writes a minimal config of the asked version when containerd has none", () => {
    const cfg = path.join(dir, "etc", "containerd", "config.toml");
    install({ prefix: path.join(dir, "p"), containerdConfig: cfg, repoRoot: REPO, emptyConfigVersion: 3 });
    const doc = parse(fs.readFileSync(cfg, "utf8")) as T;
    expect(doc.version).toBe(3);
    expect(get(doc, CASES[1].keys).runtime_type).toBe("io.containerd.shimlab.v2");
    uninstall({ prefix: path.join(dir, "p") });
    expect(parse(fs.readFileSync(cfg, "utf8"))).toEqual({ version: 3 });
  });

  it("refuses what it cannot edit safely, and writes nothing then", () => {
    const prefix = path.join(dir, "p");
    const cases: [string, RegExp][] = [
      ["[plugins.cri.containerd]\n  snapshotter = \"overlayfs\"\n", /version 1 .* not supported/],
      ["version = 4\n", /version 4 is not supported/],
      ["version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  runtimes = { runc = { runtime_type = \"io.containerd.runc.v2\" } }\n", /inline table/],
      ["version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.shimlab]\n  runtime_type = \"io.containerd.other.v2\"\n", /already defines a runtime "shimlab"/],
      ["version = 2\n[grpc\n", /not valid TOML/],
    ];
    for (const [text, err] of cases) {
      const cfg = path.join(dir, "bad.toml");
      fs.writeFileSync(cfg, text);
      expect(() => install({ prefix, containerdConfig: cfg, repoRoot: REPO })).toThrow(err);
      expect(fs.readFileSync(cfg, "utf8")).toBe(text);
      expect(fs.existsSync(prefix)).toBe(false);
      expect(fs.existsSync(cfg + ".shimlab-backup")).toBe(false);
    }
  });

  it("will not overwrite a shim binary that is not its launcher, nor a hand-edited shimlab config on uninstall", () => {
    const prefix = path.join(dir, "p");
    const cfg = path.join(dir, "config.toml");
    fs.writeFileSync(cfg, "version = 2\n");
    fs.mkdirSync(path.join(prefix, "bin"), { recursive: true });
    fs.writeFileSync(path.join(prefix, "bin", "containerd-shim-shimlab-v2"), "#!/bin/sh\necho mine\n");
    expect(() => install({ prefix, containerdConfig: cfg, repoRoot: REPO })).toThrow(/not a shimlab launcher/);
    fs.rmSync(path.join(prefix, "bin", "containerd-shim-shimlab-v2"));
    const { manifest } = install({ prefix, containerdConfig: cfg, repoRoot: REPO });
    fs.appendFileSync(manifest.shimConfig, "debug = true\n");
    uninstall({ prefix });
    expect(fs.readFileSync(manifest.shimConfig, "utf8")).toBe(DEFAULT_SHIM_CONFIG + "debug = true\n");
    expect(fs.readFileSync(cfg, "utf8")).toBe("version = 2\n");
  });

  it("works from the command line: `shimlab install`, a second run reporting ok, bad arguments, `shimlab uninstall`", () => {
    const cli = (args: string[]) => spawnSync(path.join(REPO, "bin", "shimlab"), args, { encoding: "utf8" });
    const cfg = path.join(dir, "config.toml");
    const original = fs.readFileSync(path.join(FIXTURES, "config-v3.toml"), "utf8");
    fs.writeFileSync(cfg, original);
    const prefix = path.join(dir, "p");
    const first = cli(["install", "--prefix", prefix, "--containerd-config", cfg, "--runtime-name", "shimlab-test", "--pod-annotation", "io.shimlab.*"]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^wrote {3}runtime shimlab-test in .* \(config version 3\)$/m);
    const rt = get(parse(fs.readFileSync(cfg, "utf8")) as T, ["plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "shimlab-test"]);
    expect(rt.pod_annotations).toEqual(["io.shimlab.*"]);
    const again = cli(["install", "--prefix", prefix, "--containerd-config", cfg, "--runtime-name", "shimlab-test", "--pod-annotation", "io.shimlab.*", "--restart"]);
    expect(again.status).toBe(0);
    expect(again.stdout.split("\n").filter((l) => l && !l.startsWith("ok "))).toEqual(["nothing changed: containerd not restarted"]);
    expect(cli(["install", "--bogus"]).status).toBe(2);
    expect(cli(["install", "--config-version", "5"]).stderr).toMatch(/--config-version wants 2 or 3/);
    expect(cli(["uninstall", "--prefix", prefix]).status).toBe(0);
    expect(fs.readFileSync(cfg, "utf8")).toBe(original);
  });

  it("writes through a symlinked config instead of replacing the link, and handles runtimes given as dotted keys", () => {
    const real = path.join(dir, "managed", "config.toml");
    fs.mkdirSync(path.dirname(real));
    const original = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  runtimes.runc.runtime_type = "io.containerd.runc.v2" # dotted keys\n';
    fs.writeFileSync(real, original);
    const link = path.join(dir, "config.toml");
    fs.symlinkSync(real, link);
    install({ prefix: path.join(dir, "p"), containerdConfig: link, repoRoot: REPO });
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    const doc = parse(fs.readFileSync(real, "utf8")) as T;
    expect(get(doc, CASES[0].keys).runtime_type).toBe("io.containerd.shimlab.v2");
    expect(get(doc, [...CASES[0].keys.slice(0, -1), "runc"])).toEqual({ runtime_type: "io.containerd.runc.v2" });
    uninstall({ prefix: path.join(dir, "p") });
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(real, "utf8")).toBe(original);
  });

  it("installs the native launcher with its Node named: start and delete without Node, the rest on that Node even with none on PATH", () => {
    const cfg = path.join(dir, "config.toml");
    fs.copyFileSync(path.join(FIXTURES, "config-v2.toml"), cfg);
    const prefix = path.join(dir, "p");
    install({ prefix, containerdConfig: cfg, repoRoot: REPO });
    const launcher = path.join(prefix, "bin", "containerd-shim-shimlab-v2");
    expect(fs.readFileSync(launcher, "utf8").split("\n")[2]).toBe(`SHIMLAB_NODE='${process.execPath}' exec '${path.join(REPO, "bin", "containerd-shim-shimlab-v2")}' "$@"`);
    // The compiled launcher answers (it found the checkout through its own path)...
    const empty = path.join(dir, "empty");
    fs.mkdirSync(empty);
    const noNode = { PATH: empty };
    expect(JSON.parse(execFileSync(launcher, [], { encoding: "utf8", env: { ...noNode, SHIMLAB_ONESHOT_RULES: "1" } })).defaultSocketDir).toBe("/run/containerd/s");
    // ...and hands what it does not do itself (-v) to the Node shim on the named Node, though PATH has no node.
    expect(execFileSync(launcher, ["-v"], { encoding: "utf8", env: noNode })).toContain("io.containerd.shimlab.v2");
  });

  it("selects containerd 2.x's sandboxer: podsandbox keeps the options table, shim names a launcher carrying the config; switching back removes it", () => {
    const original = fs.readFileSync(path.join(FIXTURES, "config-v3.toml"), "utf8");
    const cfg = path.join(dir, "config.toml");
    fs.writeFileSync(cfg, original);
    const prefix = path.join(dir, "p");
    const keys = CASES[1].keys;
    const shimConfig = path.join(prefix, "share", "shimlab", "config.toml");
    const sbxLauncher = path.join(prefix, "bin", SANDBOXER_SHIM_NAME);

    install({ prefix, containerdConfig: cfg, repoRoot: REPO, sandboxer: "podsandbox" });
    let rt = get(parse(fs.readFileSync(cfg, "utf8")) as T, keys);
    expect(rt).toEqual({ runtime_type: "io.containerd.shimlab.v2", runtime_path: path.join(prefix, "bin", "containerd-shim-shimlab-v2"), sandboxer: "podsandbox", options: { ConfigPath: shimConfig } });
    expect(fs.existsSync(sbxLauncher)).toBe(false);

    // shim: containerd 2.1 fails every task of a shim-sandboxer pod whose runtime has a runtimeoptions table,
    // and starts the pod's shim by runtime_type alone: the type is the launcher's path, the config in its environment.
    const shim = install({ prefix, containerdConfig: cfg, repoRoot: REPO, sandboxer: "shim" });
    expect(shim.steps.filter((s) => s.changed).map((s) => s.what)).toEqual([`launcher ${sbxLauncher} (sandboxer = "shim")`, `runtime shimlab in ${cfg} (config version 3)`, `manifest ${path.join(prefix, "share", "shimlab", "install.json")}`]);
    const installed = fs.readFileSync(cfg, "utf8");
    rt = get(parse(installed) as T, keys);
    expect(rt).toEqual({ runtime_type: sbxLauncher, sandboxer: "shim" });
    expect(withoutRuntime(installed, keys)).toEqual(withoutRuntime(original, keys));
    expect(fs.statSync(sbxLauncher).mode & 0o111).toBe(0o111);
    expect(execFileSync(sbxLauncher, ["-v"], { encoding: "utf8" })).toContain("io.containerd.shimlab.v2");
    expect(readManifest(prefix)?.sandboxerLauncher).toBe(sbxLauncher);
    // The config it carries is the installed one: a daemon it starts reads SHIMLAB_CONFIG (integration test).
    expect(fs.readFileSync(sbxLauncher, "utf8")).toContain(`SHIMLAB_CONFIG='${shimConfig}' exec`);
    expect(install({ prefix, containerdConfig: cfg, repoRoot: REPO, sandboxer: "shim" }).steps.filter((s) => s.changed)).toEqual([]);

    // Back to the default: no sandboxer key, the options table again, the shim-sandboxer launcher gone.
    install({ prefix, containerdConfig: cfg, repoRoot: REPO });
    expect(get(parse(fs.readFileSync(cfg, "utf8")) as T, keys)).toEqual({ runtime_type: "io.containerd.shimlab.v2", runtime_path: path.join(prefix, "bin", "containerd-shim-shimlab-v2"), options: { ConfigPath: shimConfig } });
    expect(fs.existsSync(sbxLauncher)).toBe(false);
    install({ prefix, containerdConfig: cfg, repoRoot: REPO, sandboxer: "shim" });
    uninstall({ prefix });
    expect(fs.readFileSync(cfg, "utf8")).toBe(original);
    expect(fs.existsSync(sbxLauncher)).toBe(false);
    expect(fs.existsSync(path.join(prefix, "bin", "containerd-shim-shimlab-v2"))).toBe(false);
  });

  it("refuses a sandboxer on a containerd 1.x config (1.6/1.7 make pause containers whatever it says), and a file in the launcher's place", () => {
    const original = fs.readFileSync(path.join(FIXTURES, "config-v2.toml"), "utf8");
    const cfg = path.join(dir, "config.toml");
    fs.writeFileSync(cfg, original);
    const prefix = path.join(dir, "p");
    for (const sandboxer of ["shim", "podsandbox"] as const) {
      expect(() => install({ prefix, containerdConfig: cfg, repoRoot: REPO, sandboxer })).toThrow(new RegExp(`sandboxer = "${sandboxer}" is a containerd 2.x setting \\(config version 3\\); this config is version 2`));
      expect(fs.readFileSync(cfg, "utf8")).toBe(original);
      expect(fs.existsSync(prefix)).toBe(false);
    }
    fs.writeFileSync(cfg, "version = 3\n");
    fs.mkdirSync(path.join(prefix, "bin"), { recursive: true });
    fs.writeFileSync(path.join(prefix, "bin", SANDBOXER_SHIM_NAME), "#!/bin/sh\necho mine\n");
    expect(() => install({ prefix, containerdConfig: cfg, repoRoot: REPO, sandboxer: "shim" })).toThrow(/not a shimlab launcher/);
    expect(fs.readFileSync(cfg, "utf8")).toBe("version = 3\n");
  });

  it("takes --sandboxer on the command line, and refuses a value it does not know", () => {
    const cli = (args: string[]) => spawnSync(path.join(REPO, "bin", "shimlab"), args, { encoding: "utf8" });
    const cfg = path.join(dir, "config.toml");
    fs.writeFileSync(cfg, "version = 3\n");
    const prefix = path.join(dir, "p");
    const bad = cli(["install", "--prefix", prefix, "--containerd-config", cfg, "--sandboxer", "pause"]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--sandboxer pause: want shim or podsandbox/);
    const ok = cli(["install", "--prefix", prefix, "--containerd-config", cfg, "--sandboxer", "shim"]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`wrote   launcher ${path.join(prefix, "bin", SANDBOXER_SHIM_NAME)} (sandboxer = "shim")`);
    expect(get(parse(fs.readFileSync(cfg, "utf8")) as T, CASES[1].keys).sandboxer).toBe("shim");
    expect(cli(["uninstall", "--prefix", prefix]).status).toBe(0);
    expect(fs.readFileSync(cfg, "utf8")).toBe("version = 3\n");
  });

  it("says what is wrong in ConfigEditError terms for a block without its end marker", () => {
    expect(() => addRuntime(`version = 2\n${BEGIN}\n[x]\n`, { name: "shimlab", runtimeType: "t", configPath: "/c" })).toThrow(ConfigEditError);
  });
});

describe("shimlab install --copy", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-install-copy-"));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A checkout as small as the copy allows: the real docs/, a stand-in build, a stand-in Node. */
  function fakeCheckout(): { repo: string; node: string } {
    const repo = path.join(dir, "repo");
    const put = (rel: string, text: string) => {
      fs.mkdirSync(path.dirname(path.join(repo, rel)), { recursive: true });
      fs.writeFileSync(path.join(repo, rel), text);
    };
    put("package.json", JSON.stringify({ name: "shimlab" }));
    put("dist/shim/main.js", "// the shim\n");
    put("bin/containerd-shim-shimlab-v2.js", "// the Node shim\n");
    put("dist/docs/contract/task-api.html", '<a id="kill.unknown-container"></a>\n');
    put("node_modules/.package-lock.json", "{}\n");
    fs.cpSync(path.join(REPO, "docs"), path.join(repo, "docs"), { recursive: true });
    const node = path.join(dir, "node");
    fs.writeFileSync(node, "#!/bin/sh\n");
    return { repo, node };
  }

  it("carries docs/ with the build, so a citation resolves in the copy, and a later edit of a doc reaches it", () => {
    const { repo, node } = fakeCheckout();
    const cfg = path.join(dir, "config.toml");
    fs.copyFileSync(path.join(FIXTURES, "config-v2.toml"), cfg);
    const prefix = path.join(dir, "prefix");
    const lib = path.join(prefix, "lib", "shimlab");
    install({ prefix, containerdConfig: cfg, repoRoot: repo, node, copy: true });
    // What conformance prints, `docs/contract/task-api.md#kill.unknown-container`, read from the copy's root.
    expect(fs.readFileSync(path.join(lib, "docs", "contract", "task-api.md"), "utf8")).toContain('<a id="kill.unknown-container"></a>');
    expect(fs.existsSync(path.join(lib, "docs", "README.md"))).toBe(true);
    expect(fs.readFileSync(path.join(lib, "dist", "docs", "contract", "task-api.html"), "utf8")).toContain('id="kill.unknown-container"');

    // The Node shim comes along; with no native launcher built, the installed one runs it with the copied Node.
    expect(fs.existsSync(path.join(lib, "bin", "containerd-shim-shimlab-v2.js"))).toBe(true);
    expect(fs.readFileSync(path.join(prefix, "bin", "containerd-shim-shimlab-v2"), "utf8")).toContain(
      `exec env -u NODE_EXTRA_CA_CERTS '${path.join(lib, "node")}' '${path.join(lib, "bin", "containerd-shim-shimlab-v2.js")}' "$@"`,
    );

    // Nothing changed: the copy is left alone.
    const again = install({ prefix, containerdConfig: cfg, repoRoot: repo, node, copy: true });
    expect(again.steps.find((s) => s.what.startsWith("Node and shimlab's build"))?.changed).toBe(false);

    // A doc rewritten in place (its directory's mtime does not move) is copied on the next install.
    const page = path.join(repo, "docs", "contract", "task-api.md");
    fs.appendFileSync(page, "\nedited\n");
    const later = new Date(Date.now() + 5_000);
    fs.utimesSync(page, later, later);
    const third = install({ prefix, containerdConfig: cfg, repoRoot: repo, node, copy: true });
    expect(third.steps.find((s) => s.what.startsWith("Node and shimlab's build"))?.changed).toBe(true);
    expect(fs.readFileSync(path.join(lib, "docs", "contract", "task-api.md"), "utf8")).toContain("\nedited\n");
    uninstall({ prefix });
    expect(fs.existsSync(lib)).toBe(false);
  });
});
