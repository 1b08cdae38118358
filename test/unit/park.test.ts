// A parked shim daemon's side of the hand-over (src/shim/park.ts): the launcher's words as
// native/oneshot.c writes them, and every reason to refuse them, since a parked daemon must
// never become a daemon other than the one the launcher would have spawned.
import { describe, it, expect, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LOAD_TIME_ENV, refusal } from "../../src/shim/park";
import { HANDOFF_VERSION, formatHandoff, parseHandoff, type Handoff } from "../../src/shim/handoff";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-park-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const words = (...f: string[]) => Buffer.from(f.map((x) => x + "\0").join(""));

describe("a launcher's hand-over", () => {
  it("reads as native/oneshot.c writes it: version, node, script, cwd, factory socket, argv, environment", () => {
    const h = parseHandoff(words(HANDOFF_VERSION, "/usr/bin/node", "/s/shim-main.js", "/b", "/f.sock", "2", "-id", "x", "A=1", "B=x=y", "C="));
    expect(h).toEqual({ node: "/usr/bin/node", script: "/s/shim-main.js", cwd: "/b", factory: "/f.sock", args: ["-id", "x"], env: { A: "1", B: "x=y", C: "" } });
  });
  it("reads back what the TypeScript start writes (src/shim/start-parked.ts)", () => {
    const h: Handoff = { node: "/n", script: "/s", cwd: "/b", factory: "/f.sock", args: ["-id", "a b", ""], env: { A: "1=2", EMPTY: "" } };
    expect(parseHandoff(formatHandoff(h))).toEqual(h);
  });
  it("refuses what is not that", () => {
    expect(() => parseHandoff(words("shimlab-handoff-0", "n", "s", "/b", "/f", "0"))).toThrow(/version/);
    expect(() => parseHandoff(Buffer.from(`${HANDOFF_VERSION}\0n\0s\0/b\0/f\x000`))).toThrow(/NUL/);
    expect(() => parseHandoff(words(HANDOFF_VERSION, "n", "s", "/b", "/f", "3", "-id"))).toThrow(/count/);
    expect(() => parseHandoff(words(HANDOFF_VERSION, "n", "s", "/b", "/f", "x"))).toThrow(/count/);
    expect(() => parseHandoff(words(HANDOFF_VERSION, "n", "s", "/b", "/f", "0", "NOEQUALS"))).toThrow(/environment/);
  });
});

describe("what a parked daemon refuses", () => {
  const script = path.join(dir, "shim-main.js");
  fs.writeFileSync(script, "//");
  fs.writeFileSync(path.join(dir, "shim.js"), "//");
  const factorySocket = path.join(dir, "factory.sock");
  const config = path.join(dir, "shim.toml");
  fs.writeFileSync(config, `[factory]\nenable = true\nsocket = ${JSON.stringify(factorySocket)}\n`);
  const stamp = () => {
    // as park.ts takes it: both files' size and mtime
    return [script, path.join(dir, "shim.js")].map((f) => `${fs.statSync(f).size}:${fs.statSync(f).mtimeMs}`).join(" ");
  };
  const parked = () => ({ script, stamp: stamp(), env: { PATH: "/bin" } as NodeJS.ProcessEnv });
  const handoff = (o: Partial<Handoff> = {}): Handoff => ({
    node: process.execPath,
    script,
    cwd: dir,
    factory: factorySocket,
    args: ["-namespace", "ns", "-id", "c1", "-address", "/run/c.sock", "-socket", "/run/s/x"],
    env: { PATH: "/usr/bin", SHIMLAB_CONFIG: config },
    ...o,
  });

  it("takes what a spawned daemon would be: its flags and the configuration read once", () => {
    const v = refusal(handoff(), parked());
    expect("why" in v).toBe(false);
    if (!("why" in v)) {
      expect(v.flags).toMatchObject({ namespace: "ns", id: "c1", socket: "/run/s/x", action: "" });
      expect(v.config.factory).toMatchObject({ enable: true, socket: factorySocket });
    }
  });
  const cases: [string, Partial<Handoff> | (() => void), RegExp][] = [
    ["another node", { node: "/nonexistent/node" }, /another node/],
    ["another shim", { script: "/elsewhere/shim-main.js" }, /another shim/],
    ["a subcommand's argv", { args: ["-namespace", "ns", "-id", "c1", "delete"] }, /not a daemon/],
    ["an invalid id", { args: ["-namespace", "ns", "-id", "../x", "-socket", "/s"] }, /arguments/],
    ["a configuration without the factory", { env: { SHIMLAB_CONFIG: path.join(dir, "none.toml") } }, /configuration/],
    ["no configuration", { env: {} }, /does not enable the factory/],
    ["another factory than the configuration's", { factory: path.join(dir, "other.sock") }, /does not enable the factory/],
    ...LOAD_TIME_ENV.map((k): [string, Partial<Handoff>, RegExp] => [`${k} set otherwise`, { env: { SHIMLAB_CONFIG: config, [k]: "x" } }, new RegExp(`${k} differs`)]),
  ];
  for (const [name, o, why] of cases)
    it(name, () => {
      const v = refusal(handoff(o as Partial<Handoff>), parked());
      expect("why" in v && v.why).toMatch(why);
    });
  it("a configuration that names another factory than the launcher asked", () => {
    const other = path.join(dir, "other.toml");
    fs.writeFileSync(other, `[factory]\nenable = true\nsocket = "/elsewhere/factory.sock"\n`);
    const v = refusal(handoff({ env: { SHIMLAB_CONFIG: other } }), parked());
    expect("why" in v && v.why).toMatch(/does not enable the factory/);
  });
  it("a bundle rebuilt since it was loaded", () => {
    const p = parked();
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(dir, "shim.js"), later, later);
    const v = refusal(handoff(), p);
    expect("why" in v && v.why).toMatch(/rebuilt/);
  });
});
