// ttrpc-gen-ts end to end: a .proto with a service becomes typed codecs, a
// typed client and a server; the package depends on nothing of shimlab's;
// `npm pack`'s tarball installs into an empty project and works there.
import { describe, it, expect, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { Client, Server, Code, RpcError, notFound, type ServiceDef } from "../src";

const PKG = path.resolve(__dirname, "..");
const GEN = path.join(PKG, "bin", "ttrpc-gen-ts.mjs");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "ttrpc-gen-"));
  dirs.push(d);
  return d;
};

const PROTO = `syntax = "proto3";
package demo.v1;
import "google/protobuf/any.proto";
message GreetRequest { string name = 1; repeated string tags = 2; google.protobuf.Any extra = 3; int64 big = 4; }
message GreetReply { string text = 1; uint32 count = 2; }
service Greeter { rpc Greet(GreetRequest) returns (GreetReply); }
`;

describe("ttrpc-gen-ts", () => {
  it("generates codecs and a service definition a client and server use with types", async () => {
    const d = tmp();
    fs.mkdirSync(path.join(d, "proto"));
    fs.writeFileSync(path.join(d, "proto", "demo.proto"), PROTO);
    // the package's own protos (google.protobuf.Any) resolve as imports
    const out = execFileSync(process.execPath, [GEN, "--proto", path.join(d, "proto"), "--proto", path.join(PKG, "proto"), "--out", path.join(d, "gen")], { encoding: "utf8" });
    expect(out).toMatch(/4 \.proto files → 4 modules/);
    const demo = await import(path.join(d, "gen", "demo.v1.ts"));
    const Greeter = demo.Greeter as ServiceDef;
    expect(Object.keys(Greeter.methods)).toEqual(["Greet"]);
    const bytes = demo.GreetRequest.encode({ name: "ttrpc", tags: ["a", "b"], big: 2 ** 40 });
    expect(demo.GreetRequest.decode(bytes)).toMatchObject({ name: "ttrpc", tags: ["a", "b"], big: 2 ** 40 });

    const sock = path.join(tmp(), "s.sock");
    const server = new Server();
    server.register(Greeter, {
      Greet: async (req: { name: string }) => {
        if (!req.name) throw notFound("no name");
        return { text: `hello ${req.name}`, count: req.name.length };
      },
    });
    await server.listen(sock);
    const client = await Client.dial(sock);
    try {
      const g = client.service(Greeter);
      expect(await g.Greet({ name: "world" })).toEqual({ text: "hello world", count: 5 });
      const err = await g.Greet({ name: "" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect((err as RpcError).code).toBe(Code.NotFound);
    } finally {
      client.close();
      await server.close();
    }
  });

  it("refuses a call without its arguments, and says how to call it", () => {
    let said = "";
    try {
      execFileSync(process.execPath, [GEN], { encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      said = String((e as { stderr: string }).stderr);
    }
    expect(said).toMatch(/usage: ttrpc-gen-ts --proto/);
  });
});

describe("the package", () => {
  it("imports nothing but itself and Node", () => {
    const bad: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith(".ts"))
          for (const m of fs.readFileSync(p, "utf8").matchAll(/from "([^"]+)"/g)) if (!m[1].startsWith(".") && !m[1].startsWith("node:")) bad.push(`${path.relative(PKG, p)}: ${m[1]}`);
      }
    };
    walk(path.join(PKG, "src"));
    expect(bad).toEqual([]);
  });

  it.skipIf(!fs.existsSync(path.join(PKG, "dist", "index.js")))(
    "installs from npm pack's tarball into an empty project, generates stubs there and serves a call",
    () => {
      const d = tmp();
      const packed = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", d], { cwd: PKG, encoding: "utf8" })) as { filename: string }[];
      const project = path.join(d, "project");
      fs.mkdirSync(path.join(project, "proto"), { recursive: true });
      fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "uses-ttrpc", private: true }));
      const lock = JSON.parse(fs.readFileSync(path.join(PKG, "..", "..", "package-lock.json"), "utf8")).packages;
      const typesNode = `@types/node@${lock["node_modules/@types/node"].version}`;
      execFileSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", path.join(d, packed[0].filename), typesNode], { cwd: project, stdio: "pipe", timeout: 300_000 });
      fs.writeFileSync(path.join(project, "proto", "demo.proto"), PROTO);
      // google/protobuf/any.proto comes with the package
      execFileSync(path.join(project, "node_modules", ".bin", "ttrpc-gen-ts"), ["--proto", "proto", "--proto", "node_modules/@shimlab/ttrpc/proto", "--out", "gen"], { cwd: project, stdio: "pipe" });
      fs.writeFileSync(
        path.join(project, "main.ts"),
        `import { Client, Server } from "@shimlab/ttrpc";
import { Greeter } from "./gen/demo.v1";
async function main(): Promise<void> {
  const server = new Server();
  server.register(Greeter, { Greet: async (req) => ({ text: "hi " + req.name, count: req.tags.length }) });
  await server.listen(process.argv[2]);
  const client = await Client.dial(process.argv[2]);
  const res = await client.service(Greeter).Greet({ name: "pack", tags: ["x"] });
  console.log(JSON.stringify(res));
  client.close();
  await server.close();
}
main();
`,
      );
      fs.writeFileSync(path.join(project, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "commonjs", target: "es2022", strict: true, outDir: "out", types: ["node"], skipLibCheck: true }, files: ["main.ts"] }));
      // Type-checked against the installed package's types: the handler's req is typed by the generated stubs.
      execFileSync(path.join(PKG, "..", "..", "node_modules", ".bin", "tsc"), ["-p", "."], { cwd: project, stdio: "pipe" });
      const out = execFileSync(process.execPath, [path.join(project, "out", "main.js"), path.join(d, "p.sock")], { cwd: project, encoding: "utf8" });
      expect(JSON.parse(out)).toEqual({ text: "hi pack", count: 1 });
    },
    300_000,
  );
});
