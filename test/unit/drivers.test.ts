// The shim builds its hypervisor driver by the kind its configuration names and
// uses only the generic interface: it never names a concrete driver, and the
// optional capabilities (prestart, release) survive the trace wrapper.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../src/shim/config";
import { HYPERVISOR_KINDS, isHypervisorKind } from "../../src/hypervisor/drivers";
import type { Hypervisor, StartOptions } from "../../src/hypervisor/types";
import { TracedHypervisor } from "../../src/trace/hypervisor";
import type { TraceRecorder } from "../../src/trace/recorder";

const repo = path.resolve(__dirname, "..", "..");

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

/** A concrete driver, by module path or class name. */
const CONCRETE = /hypervisor\/(none|host-agent|qemu)\b|\b(NoneHypervisor|HostAgentHypervisor|QemuHypervisor)\b/;

describe("the shim and the pod name no concrete driver", () => {
  it("neither src/shim nor src/pod imports a driver module or names a driver class", () => {
    const files = [...sources(path.join(repo, "src", "shim")), ...sources(path.join(repo, "src", "pod"))];
    expect(files.length).toBeGreaterThan(20);
    const offenders = files.flatMap((f) =>
      fs
        .readFileSync(f, "utf8")
        .split("\n")
        .map((line, i) => ({ line, at: `${path.relative(repo, f)}:${i + 1}` }))
        .filter((l) => CONCRETE.test(l.line))
        .map((l) => `${l.at}: ${l.line.trim()}`),
    );
    expect(offenders).toEqual([]);
  });

  it("the pattern catches what it is for (the registry names them all)", () => {
    const registry = fs.readFileSync(path.join(repo, "src", "hypervisor", "drivers.ts"), "utf8");
    expect(registry).toMatch(CONCRETE);
    for (const s of ['import type { NoneHypervisor } from "../hypervisor/none";', 'require("../hypervisor/qemu")', "as HostAgentHypervisor"]) expect(s).toMatch(CONCRETE);
    expect('import type { Hypervisor } from "../hypervisor/types";').not.toMatch(CONCRETE);
  });
});

describe("drivers by kind", () => {
  it("knows the kinds configurations and VM records spell", () => {
    expect([...HYPERVISOR_KINDS].sort()).toEqual(["none", "qemu"]);
    expect(isHypervisorKind("none")).toBe(true);
    expect(isHypervisorKind("firecracker")).toBe(false);
    expect(isHypervisorKind("toString")).toBe(false);
  });

  it("a configuration naming an unknown driver is refused with the ones there are", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-drivers-"));
    try {
      const f = path.join(dir, "c.toml");
      fs.writeFileSync(f, 'hypervisor = "firecracker"\n');
      expect(() => loadConfig(f, {})).toThrow(/hypervisor = "firecracker": want "none" or "qemu"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the default configuration builds the host agent once, with its capabilities", async () => {
    const cfg = loadConfig(undefined, {});
    const hv = cfg.hypervisor();
    expect(hv.kind).toBe("none");
    expect(cfg.hypervisor()).toBe(hv); // what it prestarts is what Create finds
    expect(typeof hv.prestart).toBe("function");
    await expect(hv.release()).resolves.toBeUndefined(); // nothing booted ahead: nothing to give back
  });
});

describe("the traced driver", () => {
  const rec = {} as TraceRecorder;
  const fake = (withPrestart: boolean) => {
    const calls: string[] = [];
    const hv: Hypervisor = {
      kind: "none",
      start: () => Promise.reject(new Error("not here")),
      release: async () => void calls.push("release"),
      ...(withPrestart ? { prestart: (o: StartOptions) => void calls.push(`prestart ${o.sandboxId}`) } : {}),
    };
    return { hv, calls };
  };

  it("passes release and prestart through to the driver", async () => {
    const { hv, calls } = fake(true);
    const t = new TracedHypervisor(hv, rec);
    t.prestart?.({ sandboxId: "sb" } as StartOptions);
    await t.release();
    expect(calls).toEqual(["prestart sb", "release"]);
  });

  it("has no prestart where the driver has none", () => {
    expect(new TracedHypervisor(fake(false).hv, rec).prestart).toBeUndefined();
  });
});
