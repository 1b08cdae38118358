// The layers of CONTRIBUTING.md, checked: .dependency-cruiser.cjs holds the rules.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "../..");
const DEPCRUISE = path.join(ROOT, "node_modules/.bin/depcruise");
const CONFIG = path.join(ROOT, ".dependency-cruiser.cjs");

function cruise(cwd: string): { code: number | null; out: string } {
  const r = spawnSync(DEPCRUISE, ["src", "--config", CONFIG, "--output-type", "err"], { cwd, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("layers", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-layers-"));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("src/ imports follow the layers", () => {
    const r = cruise(ROOT);
    expect(r.out).toContain("no dependency violations found");
    expect(r.code).toBe(0);
  });

  it("a module importing a layer above it is caught, lazy require() included", () => {
    const write = (f: string, s: string) => {
      fs.mkdirSync(path.dirname(path.join(tmp, f)), { recursive: true });
      fs.writeFileSync(path.join(tmp, f), s);
    };
    write("tsconfig.json", JSON.stringify({ compilerOptions: { module: "commonjs", target: "es2022" }, include: ["src"] }));
    write("src/harness/world.ts", "export const world = 1;\n");
    write("src/faults/failpoint.ts", "export const table = 1;\n");
    write("src/faults/proxy.ts", "export const proxy = 1;\n");
    write("src/shim/daemon.ts", 'export const f = () => require("../faults/proxy");\n');
    write("src/pod/sandbox.ts", 'import { world } from "../harness/world";\nexport const w = world;\n');
    write("src/mock-agent/main.ts", 'import { table } from "../faults/failpoint";\nimport { proxy } from "../faults/proxy";\nexport const t = [table, proxy];\n');
    const r = cruise(tmp);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/pod: src\/pod\/sandbox\.ts → src\/harness\/world\.ts/);
    expect(r.out).toMatch(/shim: src\/shim\/daemon\.ts → src\/faults\/proxy\.ts/);
    expect(r.out).toMatch(/mock-agent: src\/mock-agent\/main\.ts → src\/faults\/proxy\.ts/);
    // The mock agent's own failpoint table is allowed.
    expect(r.out).not.toMatch(/src\/mock-agent\/main\.ts → src\/faults\/failpoint\.ts/);
  });
});
