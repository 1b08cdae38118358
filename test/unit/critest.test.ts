// The pieces of the critest harness that need no containerd: the tar writer
// (read back by GNU tar), OCI blobs, ginkgo report reading and the runc bar,
// the left-out list's skip pattern, registry mirror files, the pinned version.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import { TarWriter } from "../../src/harness/tar";
import { ociImage, ociLayer } from "../../src/harness/oci-image";
import { countOutcomes, readGinkgoReport, regressions, type SpecResult } from "../../src/harness/critest/report";
import { checkSelection } from "../../src/harness/critest/run";
import { CRITEST_SUITE, excusedBy, LEFT_OUT, skipPattern, vmRefusal, VM_REFUSALS } from "../../src/harness/critest/specs";
import { shows } from "../../src/harness/peers/differences";
import { writeRegistryMirrors } from "../../src/harness/cri/registry-mirrors";
import { criToolsVersion } from "../../src/harness/peers/cri-tools";
import { formatSummary, summarize } from "../../src/harness/critest/summary";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-critest-unit-"));

describe("TarWriter", () => {
  it("writes modes, owners, hard links and symlinks that GNU tar reads back", () => {
    const tar = new TarWriter()
      .dir("bin")
      .file("bin/busybox", "#!/bin/sh\necho hi\n", { mode: 0o755 })
      .hardlink("bin/ls", "bin/busybox")
      .symlink("bin/sh", "busybox")
      .file("usr/local/bin/nnp", "x", { mode: 0o4755, uid: 0, gid: 0 })
      .file("etc/passwd", "root:x:0:0::/root:/bin/sh\n", { uid: 1000, gid: 50000 })
      .finish();
    expect(tar.length % 512).toBe(0);
    const listing = execFileSync("tar", ["-tvf", "-", "--numeric-owner"], { input: tar }).toString();
    expect(listing).toMatch(/^drwxr-xr-x 0\/0\s+0 .* bin\/$/m);
    expect(listing).toMatch(/^-rwxr-xr-x 0\/0\s+18 .* bin\/busybox$/m);
    expect(listing).toMatch(/^hrwxr-xr-x .* bin\/ls link to bin\/busybox$/m);
    expect(listing).toMatch(/^lrwxrwxrwx .* bin\/sh -> busybox$/m);
    expect(listing).toMatch(/^-rwsr-xr-x 0\/0 .* usr\/local\/bin\/nnp$/m);
    expect(listing).toMatch(/^-rw-r--r-- 1000\/50000 .* etc\/passwd$/m);
    const dir = tmp();
    try {
      execFileSync("tar", ["-xf", "-", "-C", dir], { input: tar });
      expect(fs.statSync(path.join(dir, "bin/ls")).ino).toBe(fs.statSync(path.join(dir, "bin/busybox")).ino);
      expect(fs.readFileSync(path.join(dir, "bin/ls"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("gives the same bytes for the same entries, and refuses a hard link to nothing", () => {
    const mk = () => new TarWriter().file("a", "1").finish();
    expect(mk().equals(mk())).toBe(true);
    expect(() => new TarWriter().hardlink("b", "a")).toThrow(/no such entry/);
    expect(() => new TarWriter().file("x".repeat(101), "")).toThrow(/100 bytes/);
  });
});

describe("ociImage", () => {
  it("names each blob by its digest and lists the layers' uncompressed digests in the config", () => {
    const tar = new TarWriter().file("hello", "world").finish();
    const layer = ociLayer(tar);
    const img = ociImage([layer], { Cmd: ["sh"], User: "1000" });
    const sha = (b: Buffer) => "sha256:" + crypto.createHash("sha256").update(b).digest("hex");
    for (const b of [img.manifest, img.config, ...img.layers]) {
      expect(b.digest).toBe(sha(b.bytes));
      expect(b.size).toBe(b.bytes.length);
    }
    expect(zlib.gunzipSync(img.layers[0].bytes).equals(tar)).toBe(true);
    const config = JSON.parse(img.config.bytes.toString());
    expect(config.rootfs.diff_ids).toEqual([sha(tar)]);
    expect(config.config).toEqual({ Cmd: ["sh"], User: "1000" });
    const manifest = JSON.parse(img.manifest.bytes.toString());
    expect(manifest.config.digest).toBe(img.config.digest);
    expect(manifest.layers.map((l: { digest: string }) => l.digest)).toEqual([img.layers[0].digest]);
  });
});

function ginkgoReport(specs: { c: string[]; l: string; state: string; msg?: string; tries?: number }[]): string {
  const dir = tmp();
  const f = path.join(dir, "r.json");
  fs.writeFileSync(
    f,
    JSON.stringify([
      {
        SuiteDescription: CRITEST_SUITE,
        SpecReports: [
          { LeafNodeType: "SynchronizedBeforeSuite", State: "passed" },
          ...specs.map((s) => ({ ContainerHierarchyTexts: s.c, LeafNodeText: s.l, LeafNodeType: "It", State: s.state, RunTime: 1.5e9, NumAttempts: s.tries ?? 1, Failure: s.msg ? { Message: s.msg } : undefined })),
        ],
      },
    ]),
  );
  return f;
}

describe("critest reports", () => {
  it("reads outcomes, separating the suite's left-out specs from critest's own skips", () => {
    const f = ginkgoReport([
      { c: ["[k8s.io] A"], l: "passes", state: "passed", tries: 2 },
      { c: ["[k8s.io] A"], l: "fails", state: "failed", msg: "Unexpected error:\n    <*status.Error>: \n    rpc error: code = NotFound desc = gone\noccurred" },
      { c: ["[k8s.io] B"], l: "skips itself", state: "skipped", msg: "NRI socket not configured" },
      { c: ["[k8s.io] B"], l: "left out", state: "skipped" },
      { c: ["[k8s.io] C"], l: "panics", state: "panicked", msg: "boom" },
    ]);
    const r = readGinkgoReport(f, new Set(["[k8s.io] B left out"]));
    expect(r.map((x) => [x.name, x.outcome])).toEqual([
      ["[k8s.io] A passes", "passed"],
      ["[k8s.io] A fails", "failed"],
      ["[k8s.io] B skips itself", "skipped"],
      ["[k8s.io] B left out", "left-out"],
      ["[k8s.io] C panics", "failed"],
    ]);
    expect(r[1].message).toBe("Unexpected error: rpc error: code = NotFound desc = gone");
    expect(r.map((x) => x.attempts)).toEqual([2, 1, 1, 1, 1]);
    expect(countOutcomes(r)).toEqual({ passed: 1, failed: 2, skipped: 1, leftOut: 1 });
    fs.rmSync(path.dirname(f), { recursive: true });
  });

  it("keeps the runtime's reason beside critest's step, so a VM refusal is told from any other failure", () => {
    const hostNet = VM_REFUSALS.find((v) => v.name.includes("HostNetwork is true"))!;
    const spec = hostNet.name.replace(/^\[k8s\.io\] (.*) runtime should support (HostNetwork is true)$/, "$1|$2").split("|");
    const f = ginkgoReport([
      { c: ["[k8s.io] " + spec[0], "runtime should support"], l: spec[1], state: "failed", msg: `failed to create PodSandbox\nUnexpected error:\n    <*status.Error | 0x1>: \n    rpc error: code = InvalidArgument desc = ${hostNet.error}\n    {` },
      { c: ["[k8s.io] " + spec[0], "runtime should support"], l: "HostIpc is true", state: "failed", msg: "failed to create PodSandbox\nUnexpected error:\n    rpc error: code = DeadlineExceeded desc = timed out" },
    ]);
    const r = readGinkgoReport(f);
    expect(r[0].name).toBe(hostNet.name);
    expect(r[0].message).toBe(`failed to create PodSandbox: rpc error: code = InvalidArgument desc = ${hostNet.error}`);
    expect(vmRefusal(r[0])).toMatch(/^refused in a VM: /);
    // the right spec failing for another reason (a timeout) is not the refusal
    expect(vmRefusal(r[1])).toBeNull();
    fs.rmSync(path.dirname(f), { recursive: true });
  });

  it("finds every spec runc passes that another run does not pass, a missing one included", () => {
    const res = (name: string, outcome: SpecResult["outcome"]): SpecResult => ({ name, outcome, state: outcome, message: "", seconds: 0, attempts: 1 });
    const runc = [res("a", "passed"), res("b", "passed"), res("c", "failed"), res("d", "passed")];
    const other = [res("a", "passed"), res("b", "failed"), res("c", "passed")];
    expect(regressions(runc, other).map((r) => [r.name, r.state])).toEqual([
      ["b", "failed"],
      ["d", "missing"],
    ]);
    expect(regressions(runc, runc)).toEqual([]);
    const s = summarize("1.37.0", [], [
      { containerd: "1.6", handler: "runc", results: runc, seconds: 70, parallel: 1, exitCode: 1, jsonReport: "r.json", junitReport: "r.xml" },
      { containerd: "1.6", handler: "shimlab", results: other, seconds: 120, parallel: 1, exitCode: 1, jsonReport: "s.json", junitReport: "s.xml" },
    ]);
    expect(s.runs[0].passOnRuncNotHere).toBeUndefined();
    expect(s.runs[1].passOnRuncNotHere?.map((x) => x.name)).toEqual(["b", "d"]);
    expect(formatSummary(s)).toContain("passes on runc, missing here: d");
  });

  it("skips exactly the left-out specs: anchored to ginkgo's suite text, regexp characters escaped", () => {
    const re = new RegExp(skipPattern());
    for (const l of LEFT_OUT) {
      expect(re.test(`${CRITEST_SUITE} ${l.name}`)).toBe(true);
      expect(re.test(`${CRITEST_SUITE} ${l.name} and more`)).toBe(false);
      expect(l.reason.length).toBeGreaterThan(20);
    }
    expect(re.test(`${CRITEST_SUITE} [k8s.io] Image Manager public image with tag should be pulled and removed [Conformance]`)).toBe(false);
  });

  it("refuses a dry run that still selects a left-out spec, or lacks one", () => {
    const res = (name: string, state: string): SpecResult => ({ name, outcome: "passed", state, message: "", seconds: 0, attempts: 1 });
    const leftOut = [{ name: "x", reason: "r" }];
    expect(() => checkSelection([res("a", "passed"), res("x", "skipped")], leftOut)).not.toThrow();
    expect(() => checkSelection([res("a", "passed"), res("x", "passed")], leftOut)).toThrow(/still selected/);
    expect(() => checkSelection([res("a", "passed")], leftOut)).toThrow(/not in critest/);
    expect(() => checkSelection([res("x", "skipped")], leftOut)).toThrow(/no spec at all/);
  });
});

describe("skips containerd decides", () => {
  it("excuse only critest's own skip with the exact message, on a containerd that shows the difference", () => {
    const on = (major: number, minor: number) => (d: string) => shows({ major, minor }, d);
    const userns = { state: "skipped", message: "no runtime handler found which supports user namespaces" };
    expect(excusedBy(userns, on(2, 1))).toBe("cri-runtime-features");
    expect(excusedBy(userns, on(1, 6))).toBeNull();
    expect(excusedBy({ ...userns, state: "failed" }, on(2, 1))).toBeNull();
    expect(excusedBy({ state: "skipped", message: "NRI socket not configured (use -nri-socket flag)" }, on(2, 1))).toBeNull();
  });
});

describe("registry mirrors", () => {
  it("writes one hosts.toml per registry, pulling from the mirror over plain HTTP", () => {
    const dir = tmp();
    try {
      writeRegistryMirrors(dir, ["registry.k8s.io", "docker.io"], "127.0.0.1:5123");
      expect(fs.readFileSync(path.join(dir, "registry.k8s.io", "hosts.toml"), "utf8")).toBe(
        'server = "https://registry.k8s.io"\n\n[host."http://127.0.0.1:5123"]\n  capabilities = ["pull", "resolve"]\n',
      );
      expect(fs.readFileSync(path.join(dir, "docker.io", "hosts.toml"), "utf8")).toContain('server = "https://registry-1.docker.io"');
      expect(() => writeRegistryMirrors(dir, ["a/b"], "127.0.0.1:1")).toThrow(/want host/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("cri-tools version", () => {
  it("is the one test/peers/cri-tools/go.mod requires", () => {
    expect(criToolsVersion()).toMatch(/^v1\.\d+\.\d+$/);
    const dir = tmp();
    try {
      fs.writeFileSync(path.join(dir, "go.mod"), "module x\n\nrequire (\n\tfoo v1.0.0\n\tsigs.k8s.io/cri-tools v1.99.1\n)\n");
      expect(criToolsVersion(dir)).toBe("v1.99.1");
      fs.writeFileSync(path.join(dir, "go.mod"), "module x\n");
      expect(() => criToolsVersion(dir)).toThrow(/does not require/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
