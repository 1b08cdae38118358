// The version differences live once, as data; the README's table must name each one.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { DIFFERENCES, shows } from "../../src/harness/peers/differences";

describe("containerd version differences", () => {
  it("are each in the README's table, and the table has no other", () => {
    const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("| difference | versions | what |"));
    const rows = [...table.split("\n\n")[0].matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1]);
    expect(rows.sort()).toEqual(DIFFERENCES.map((d) => d.id).sort());
  });

  it("apply by version range", () => {
    const v = (major: number, minor: number) => ({ major, minor });
    expect(shows(v(1, 6), "leaked-shim-cleanup")).toBe(false);
    expect(shows(v(1, 7), "leaked-shim-cleanup")).toBe(true);
    expect(shows(v(2, 1), "leaked-shim-cleanup")).toBe(true);
    expect(shows(v(1, 7), "v3-result-refused")).toBe(true);
    expect(shows(v(2, 1), "v3-result-refused")).toBe(false);
    expect(shows(v(2, 3), "no-bootstrap-params")).toBe(false);
    expect(() => shows(v(2, 1), "no-such")).toThrow(/no version difference/);
  });
});
