// shimlab as its users get it: `npm pack`'s tarball installed into an empty
// project, required from CommonJS, imported from ESM, type-checked, and the
// worked example of docs/api.md (examples/my-shim.test.ts, copied as it is)
// run green by the project's own vitest.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { missing } from "../helpers/env";
import { expectNoLeaks } from "../helpers/leaks";

const REPO = path.resolve(__dirname, "..", "..");
const skip = missing("root", "containerd", "ctr", "runc", "busybox");
const run = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 });

describe.skipIf(skip)("the npm package in an empty project", () => {
  let dir: string;
  let tarball: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-pkg-"));
    const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", dir], REPO)) as { filename: string }[];
    tarball = path.join(dir, packed[0].filename);
    const project = path.join(dir, "project");
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "my-shim-tests", private: true, type: "module" }, null, 2));
    const versions = JSON.parse(fs.readFileSync(path.join(REPO, "package-lock.json"), "utf8")).packages;
    const pin = (n: string) => `${n}@${versions[`node_modules/${n}`].version}`;
    // The versions this checkout tested with: from npm's cache when it has them.
    run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball, pin("vitest"), pin("@types/node")], project);
  }, 600_000);

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("holds what the library needs and nothing of the checkout's build state", () => {
    const files = (JSON.parse(run("npm", ["pack", "--dry-run", "--json"], REPO)) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
    for (const f of ["dist/index.js", "dist/index.mjs", "dist/index.d.ts", "dist/vitest.mjs", "dist/bundle/shim-main.js", "bin/containerd-shim-shimlab-v2", "native/build/shimlab.node", "native/build/vm-keeper", "kernel/guest.config"])
      expect(files, f).toContain(f);
    // The contract every report cites, as Markdown and as the HTML trace pages link to, and the learner's guide.
    for (const f of ["docs/README.md", "docs/contract/README.md", "docs/contract/task-api.md", "docs/contract/events.md", "dist/docs/contract/events.html"]) expect(files, f).toContain(f);
    expect(files.filter((f) => /tsbuildinfo|^test-artifacts\/|^src\/(?!harness\/critest\/standins\/)/.test(f))).toEqual([]);
    // The ttrpc package is not on the registry: it travels inside, built (with the generator's protobufjs).
    expect(files).toContain("node_modules/@shimlab/ttrpc/dist/index.js");
    expect(files.filter((f) => f.startsWith("node_modules/") && !/^node_modules\/(@shimlab\/ttrpc|protobufjs|long)\//.test(f))).toEqual([]);
  });

  it("is required from CommonJS and imported from ESM, with the same names", () => {
    const project = path.join(dir, "project");
    const cjs = run("node", ["-e", 'const s = require("shimlab"); console.log(Object.keys(s).filter((k) => k !== "__esModule").sort().join(","))'], project).trim();
    const esm = run("node", ["--input-type=module", "-e", 'import * as s from "shimlab"; console.log(Object.keys(s).filter((k) => k !== "default").sort().join(","))'], project).trim();
    expect(esm).toBe(cjs);
    for (const n of ["Containerd", "ContainerdEmulator", "ShimRunner", "conformance", "scenarios", "trace", "cri", "peers"]) expect(cjs.split(","), n).toContain(n);
    const fixtures = run("node", ["--input-type=module", "-e", 'import * as f from "shimlab/vitest"; console.log(Object.keys(f).sort().join(","))'], project).trim();
    expect(fixtures).toBe("busyboxRootfs,useContainerd,useShim");
  });

  it("cites rules whose entries the installed package holds", () => {
    // A failing report of every check, made by the installed package: each rule path it prints must name
    // an entry under the directory the report says the paths are relative to, and that is the package.
    const project = path.join(dir, "project");
    fs.writeFileSync(
      path.join(project, "cites.cjs"),
      `const fs = require("fs"), path = require("path");
const { conformance } = require("shimlab");
const checks = conformance.ALL_CHECKS.map((c) => ({ name: c.name, group: c.group, rule: c.rule, also: c.also || [], status: "fail", detail: "x", ms: 1, observations: [] }));
const rep = { shim: "/x", profile: "p", contract: "docs/contract/README.md", startedAt: "t", ms: 1, checks, counts: { pass: 0, fail: checks.length, skip: 0 }, leftovers: [] };
const root = /\\(rule paths are under (\\S+);/.exec(conformance.summary(rep))[1];
const cited = JSON.parse(conformance.toJson(rep)).checks.map((c) => c.ruleDoc);
const bad = cited.filter((d) => { const [f, id] = d.split("#"); const p = path.join(root, f); return !fs.existsSync(p) || !fs.readFileSync(p, "utf8").includes('<a id="' + id + '"></a>'); });
console.log(JSON.stringify({ root, n: cited.length, bad }));
`,
    );
    const r = JSON.parse(run("node", ["cites.cjs"], project)) as { root: string; n: number; bad: string[] };
    expect(fs.realpathSync(r.root)).toBe(fs.realpathSync(path.join(project, "node_modules", "shimlab")));
    expect(r.n).toBeGreaterThan(40);
    expect(r.bad).toEqual([]);
  });

  it("type-checks the example against the package's types", () => {
    const project = path.join(dir, "project");
    fs.copyFileSync(path.join(REPO, "examples", "my-shim.test.ts"), path.join(project, "my-shim.test.ts"));
    fs.writeFileSync(
      path.join(project, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, noEmit: true, types: ["node"], skipLibCheck: true }, files: ["my-shim.test.ts"] }),
    );
    run(path.join(REPO, "node_modules", ".bin", "tsc"), ["-p", "."], project);
    // and a wrong use is caught: the types are real, not any
    fs.writeFileSync(path.join(project, "wrong.ts"), 'import { conformance } from "shimlab";\nconformance.runSuite({ shim: 42 });\n');
    fs.writeFileSync(path.join(project, "tsconfig.wrong.json"), JSON.stringify({ extends: "./tsconfig.json", files: ["wrong.ts"] }));
    let said = "";
    try {
      run(path.join(REPO, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.wrong.json"], project);
    } catch (e) {
      said = String((e as { stdout?: string }).stdout);
    }
    expect(said).toMatch(/wrong\.ts\(2,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/);
  });

  it("runs the worked example green with the project's own vitest", async () => {
    const project = path.join(dir, "project");
    fs.copyFileSync(path.join(REPO, "examples", "my-shim.test.ts"), path.join(project, "my-shim.test.ts"));
    const out = run(path.join(project, "node_modules", ".bin", "vitest"), ["run", "--reporter", "verbose"], project, { SHIMLAB_CONTAINERD: "" });
    expect(out).toMatch(/Tests\s+.*4 passed/);
    // the shim containerd ran was the installed package's
    expect(fs.existsSync(path.join(project, "node_modules", "shimlab", "bin", "containerd-shim-shimlab-v2"))).toBe(true);
    await expectNoLeaks([dir]);
  }, 300_000);
});
