import { describe, it, expect } from "vitest";
import { globMatch, hypervisorOverrides, HYPERVISOR_ANNOTATION_PREFIX as P } from "../../src/hypervisor/annotations";
import { kindOf } from "../../src/errdefs";

const err = (f: () => unknown) => {
  try {
    f();
    return "OK";
  } catch (e) {
    return `${kindOf(e)}: ${(e as Error).message}`;
  }
};

describe("hypervisor annotations through the allow-list", () => {
  it("ignores annotations that are not the hypervisor's, and takes nothing by default", () => {
    expect(hypervisorOverrides({ "io.kubernetes.cri.container-type": "sandbox", foo: "bar" }, { enable: [] })).toEqual({});
    expect(err(() => hypervisorOverrides({ [P + "default_memory"]: "512" }, { enable: [] }))).toBe(
      `InvalidArgument: annotation ${P}default_memory is not enabled (add it to the hypervisor's enable_annotations): invalid argument`,
    );
  });

  it("takes enabled keys, parsed and bounded", () => {
    const policy = { enable: ["default_memory", "default_vcpus", "kernel_params", "machine_type"] };
    expect(
      hypervisorOverrides({ [P + "default_memory"]: "512", [P + "default_vcpus"]: "2", [P + "kernel_params"]: "quiet panic=1", [P + "machine_type"]: "microvm" }, policy),
    ).toEqual({ memoryMb: 512, vcpus: 2, kernelParams: "quiet panic=1", machineType: "microvm" });
    expect(err(() => hypervisorOverrides({ [P + "default_memory"]: "-1" }, policy))).toMatch(/^InvalidArgument: .*unsigned integer/);
    expect(err(() => hypervisorOverrides({ [P + "default_vcpus"]: "9999" }, policy))).toMatch(/^InvalidArgument: .*1\.\.255/);
    expect(err(() => hypervisorOverrides({ [P + "kernel_params"]: "a\n-device x" }, policy))).toMatch(/^InvalidArgument: .*one line/);
    expect(err(() => hypervisorOverrides({ [P + "machine_type"]: "pc -monitor stdio" }, policy))).toMatch(/^InvalidArgument/);
  });

  it("matches allow-list entries against the whole key, unlike Kata's unanchored regexp", () => {
    expect(err(() => hypervisorOverrides({ [P + "jailer_path"]: "/x" }, { enable: ["path"] }))).toMatch(/is not enabled/);
    expect(hypervisorOverrides({ [P + "default_vcpus"]: "3" }, { enable: ["default_.*"] })).toEqual({ vcpus: 3 });
    expect(err(() => hypervisorOverrides({}, { enable: ["("] }))).toMatch(/not a valid regular expression/);
  });

  it("refuses unknown keys even when enabled, and host paths outside valid_*_paths", () => {
    expect(err(() => hypervisorOverrides({ [P + "enable_debug"]: "true" }, { enable: [".*"] }))).toMatch(/not a hypervisor setting shimlab knows/);
    const policy = { enable: ["path", "kernel"], validHypervisorPaths: ["/usr/bin/qemu-system-*"], validKernelPaths: ["/var/cache/shimlab/*/vmlinux"] };
    expect(hypervisorOverrides({ [P + "path"]: "/usr/bin/qemu-system-x86_64" }, policy)).toEqual({ path: "/usr/bin/qemu-system-x86_64" });
    expect(err(() => hypervisorOverrides({ [P + "path"]: "/tmp/evil" }, policy))).toMatch(/not in valid_hypervisor_paths/);
    expect(err(() => hypervisorOverrides({ [P + "kernel"]: "/var/cache/shimlab/a/b/vmlinux" }, policy))).toMatch(/not in valid_kernel_paths/);
  });

  it("globs whole paths, one segment per star", () => {
    expect(globMatch("/usr/bin/qemu-*", "/usr/bin/qemu-system-x86_64")).toBe(true);
    expect(globMatch("/usr/bin/*", "/usr/bin/sub/qemu")).toBe(false);
    expect(globMatch("/a/b?", "/a/bc")).toBe(true);
    expect(globMatch("/a.b", "/aXb")).toBe(false);
  });
});
