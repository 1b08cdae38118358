// shimlab's ttrpc library on its own: an echo service (a string field back
// as sent, 64 bytes) served by src/ttrpc/server.ts in a child process and
// called through src/ttrpc/client.ts. No Go figure is taken here: the Go
// client's own figure against both shims is the gostate benchmark.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { ROOT, dist } from "./lib/env.mjs";
import { roundTrips } from "./lib/rpc.mjs";

const SERVER = `
const net = require("node:net");
const { Server } = require(${JSON.stringify(path.join(ROOT, "dist/ttrpc/server.js"))});
const { StateRequest } = require(${JSON.stringify(path.join(ROOT, "dist/gen/containerd.task.v2.js"))});
const Echo = { name: "bench.Echo", methods: { Echo: { name: "Echo", requestType: StateRequest, responseType: StateRequest } } };
const server = new Server();
server.register(Echo, { Echo: (req) => ({ id: req.id, execId: req.execId }) });
const l = net.createServer();
server.serve(l);
l.listen(process.argv[1], () => process.stdout.write("ready\\n"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
`;

export async function echoBench({ log = () => {}, calls = 10_000 } = {}) {
  const { Client } = dist("ttrpc/client.js");
  const { StateRequest } = dist("gen/containerd.task.v2.js");
  const Echo = { name: "bench.Echo", methods: { Echo: { name: "Echo", requestType: StateRequest, responseType: StateRequest } } };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-bench-echo-"));
  const sock = path.join(dir, "echo.sock");
  const child = spawn(process.execPath, ["-e", SERVER, sock], { stdio: ["pipe", "pipe", "inherit"] });
  let client;
  try {
    await new Promise((resolve, reject) => {
      child.stdout.once("data", resolve);
      child.once("exit", (c) => reject(new Error(`echo server exited (${c})`)));
    });
    client = await Client.dial(sock);
    const echo = client.service(Echo, { timeoutMs: 10_000 });
    const msg = { id: "x".repeat(64) };
    const r = await roundTrips(() => echo.Echo(msg), { calls });
    log(`ttrpc echo: seq ${r.seq.rate.toFixed(0)}/s p50 ${r.seq.p50.toFixed(1)} µs; 16 callers ${r.c16.rate.toFixed(0)}/s`);
    return r;
  } finally {
    client?.close();
    child.stdin.end();
    await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
