// The WebSocket client and the channel protocol of CRI streaming, against a
// small server written here from RFC 6455 (the real one, containerd's
// streaming server, is in test/integration/cri-stream.test.ts).
import { describe, it, expect, afterEach } from "vitest";
import crypto from "node:crypto";
import http from "node:http";
import type net from "node:net";
import { WebSocket } from "../../src/harness/cri/websocket";
import { CHANNEL_PROTOCOL, CriStream, exitCodeOf } from "../../src/harness/cri/stream";
import { parsePortSpec, PortForwardStream } from "../../src/harness/cri/port-forward";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Server-side frame (unmasked). */
function frame(op: number, payload: Buffer, fin = true): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.alloc(2) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = (fin ? 0x80 : 0) | op;
  if (len < 126) head[1] = len;
  else if (len < 65536) {
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

/** Client frames as the server reads them: every one must be masked. */
function parseClientFrames(buf: Buffer): { op: number; payload: Buffer; masked: boolean }[] {
  const out = [];
  let i = 0;
  while (i + 2 <= buf.length) {
    const op = buf[i] & 0x0f;
    const masked = (buf[i + 1] & 0x80) !== 0;
    let len = buf[i + 1] & 0x7f;
    let off = i + 2;
    if (len === 126) {
      len = buf.readUInt16BE(off);
      off += 2;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(off));
      off += 8;
    }
    const key = masked ? buf.subarray(off, off + 4) : null;
    if (masked) off += 4;
    const payload = Buffer.from(buf.subarray(off, off + len));
    if (key) for (let j = 0; j < payload.length; j++) payload[j] ^= key[j & 3];
    out.push({ op, payload, masked });
    i = off + len;
  }
  return out;
}

const servers: http.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  // An upgraded socket is no longer the server's to close.
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A server that upgrades and hands the raw socket to `onSocket`. */
async function server(onSocket: (s: net.Socket, req: http.IncomingMessage) => void, o: { protocol?: string; refuse?: boolean; badAccept?: boolean } = {}): Promise<string> {
  const srv = http.createServer((_req, res) => res.writeHead(o.refuse ? 404 : 400).end("no upgrade here"));
  srv.on("upgrade", (req, socket: net.Socket) => {
    sockets.push(socket);
    socket.on("error", () => {}); // the client may reset it
    if (o.refuse) {
      socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
      return;
    }
    const accept = o.badAccept ? "wrong" : crypto.createHash("sha1").update(req.headers["sec-websocket-key"] + GUID).digest("base64");
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${o.protocol ?? CHANNEL_PROTOCOL}\r\n\r\n`);
    onSocket(socket, req);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}/exec/tok`;
}

describe("WebSocket client", () => {
  it("upgrades with a key and subprotocols, masks what it sends, reassembles fragments and answers pings", async () => {
    let got = Buffer.alloc(0);
    let headers: http.IncomingHttpHeaders = {};
    const url = await server((s, req) => {
      headers = req.headers;
      s.on("data", (d) => (got = Buffer.concat([got, d])));
      s.write(Buffer.concat([frame(0x2, Buffer.from("hel"), false), frame(0x9, Buffer.from("p1")), frame(0x0, Buffer.from("lo"))]));
    });
    const ws = await WebSocket.connect(url, [CHANNEL_PROTOCOL]);
    ws.on("error", () => {}); // the reset when the test's server goes
    expect(headers["sec-websocket-protocol"]).toBe(CHANNEL_PROTOCOL);
    expect(headers["sec-websocket-version"]).toBe("13");
    expect(ws.protocol).toBe(CHANNEL_PROTOCOL);
    const msg = await new Promise<{ binary: boolean; data: Buffer }>((r) => ws.on("message", r));
    expect(msg).toEqual({ binary: true, data: Buffer.from("hello") });
    ws.send(Buffer.alloc(70_000, 7));
    await new Promise((r) => setTimeout(r, 100));
    const frames = parseClientFrames(got);
    expect(frames.every((f) => f.masked)).toBe(true);
    expect(frames.map((f) => [f.op, f.payload.length])).toEqual([
      [0xa, 2], // the pong, echoing "p1"
      [0x2, 70_000],
    ]);
    expect(frames[1].payload.every((b) => b === 7)).toBe(true);
    ws.close();
  });

  it("fails clearly on a refused upgrade, a wrong accept key and a subprotocol it did not ask for", async () => {
    await expect(WebSocket.connect(await server(() => {}, { refuse: true }), [CHANNEL_PROTOCOL])).rejects.toThrow(/404|upgrade/);
    await expect(WebSocket.connect(await server(() => {}, { badAccept: true }), [CHANNEL_PROTOCOL])).rejects.toThrow(/Sec-WebSocket-Accept/);
    await expect(WebSocket.connect(await server(() => {}, { protocol: "base64.channel.k8s.io" }), [CHANNEL_PROTOCOL])).rejects.toThrow(/subprotocol "base64.channel.k8s.io"/);
    await expect(WebSocket.connect("https://127.0.0.1:1/x", [])).rejects.toThrow(/TLS/);
  });

  it("refuses a frame claiming more than 64 MiB instead of buffering it", async () => {
    const url = await server((s) => {
      const head = Buffer.alloc(10);
      head[0] = 0x82;
      head[1] = 127;
      head.writeBigUInt64BE(1n << 40n, 2);
      s.write(head);
    });
    const ws = await WebSocket.connect(url, [CHANNEL_PROTOCOL]);
    const err = await new Promise<Error>((r) => ws.on("error", r));
    expect(err.message).toMatch(/frame/);
  });
});

describe("CRI stream channels", () => {
  it("routes stdout and stderr, sends stdin and resize on their channels, and reads the exit code from the status", async () => {
    let got = Buffer.alloc(0);
    let sock: net.Socket | null = null;
    const url = await server((s) => {
      sock = s;
      s.on("data", (d) => (got = Buffer.concat([got, d])));
      // empty opening messages on each channel, as the server sends them
      for (const ch of [1, 2, 3]) s.write(frame(0x2, Buffer.of(ch)));
    });
    const st = await CriStream.open(url);
    const out: string[] = [];
    const err: string[] = [];
    st.on("stdout", (d) => out.push(d.toString()));
    st.on("stderr", (d) => err.push(d.toString()));
    st.write("input\n");
    st.resize(100, 30);
    await new Promise((r) => setTimeout(r, 50));
    const s = sock as unknown as net.Socket;
    s.write(frame(0x2, Buffer.concat([Buffer.of(1), Buffer.from("out\n")])));
    s.write(frame(0x2, Buffer.concat([Buffer.of(2), Buffer.from("err\n")])));
    const status = { metadata: {}, status: "Failure", message: "command terminated with non-zero exit code", reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: "7" }] } };
    s.write(frame(0x2, Buffer.concat([Buffer.of(3), Buffer.from(JSON.stringify(status))])));
    const close = Buffer.alloc(2);
    close.writeUInt16BE(1000);
    s.write(frame(0x8, close));
    const r = await st.done;
    expect(r.exitCode).toBe(7);
    expect(out.join("")).toBe("out\n");
    expect(err.join("")).toBe("err\n");
    const frames = parseClientFrames(got).filter((f) => f.op === 0x2);
    expect(frames.map((f) => [f.payload[0], f.payload.subarray(1).toString()])).toEqual([
      [0, "input\n"],
      [4, '{"Width":100,"Height":30}'],
    ]);
  });

  it("exit codes from v4 statuses; a dropped connection is an error, not exit 0", async () => {
    expect(exitCodeOf({ status: "Success" })).toBe(0);
    expect(exitCodeOf({ status: "Failure", reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: "137" }] } })).toBe(137);
    expect(exitCodeOf({ status: "Failure", reason: "InternalError", message: "boom" })).toBeNull();
    expect(exitCodeOf(null)).toBeNull();
    const url = await server((s) => setTimeout(() => s.destroy(), 20));
    const st = await CriStream.open(url);
    await expect(st.done).rejects.toThrow(/1006.*before the process ended/);
  });
});

describe("portforward over the channel protocol (src/harness/cri/port-forward.ts)", () => {
  const portHeader = (ch: number, port: number) => {
    const b = Buffer.alloc(3);
    b[0] = ch;
    b.writeUInt16LE(port, 1);
    return b;
  };

  it("strips each channel's port header (even split across messages), carries data both ways, ends cleanly", async () => {
    let fromClient = Buffer.alloc(0);
    const url = await server((s) => {
      s.write(frame(2, portHeader(0, 8080).subarray(0, 2))); // the header's first byte alone
      s.write(frame(2, Buffer.concat([Buffer.of(0, 0x1f), Buffer.from("hello")]))); // its second, then data
      s.write(frame(2, portHeader(1, 8080)));
      s.on("data", (d: Buffer) => {
        fromClient = Buffer.concat([fromClient, d]);
        const frames = parseClientFrames(fromClient);
        if (frames.some((f) => f.op === 2 && f.payload.toString().endsWith("ping"))) {
          expect(frames.every((f) => f.masked)).toBe(true);
          s.write(frame(2, Buffer.concat([Buffer.of(0), Buffer.from(" world")])));
          s.end(frame(8, Buffer.from([0x03, 0xe8])));
        }
      });
    });
    const st = await PortForwardStream.connect(url, 8080);
    let got = "";
    st.on("data", (d) => (got += d.toString()));
    const ended = new Promise<string | null>((r) => st.on("end", r));
    st.write(Buffer.from("ping"));
    expect(await ended).toBeNull();
    expect(got).toBe("hello world");
    const sent = parseClientFrames(fromClient).find((f) => f.op === 2)!;
    expect(sent.payload[0]).toBe(0); // data channel of the first port
  });

  it("the error channel's text is the stream's end", async () => {
    const url = await server((s) => {
      s.write(frame(2, portHeader(0, 81)));
      s.write(frame(2, portHeader(1, 81)));
      s.write(frame(2, Buffer.concat([Buffer.of(1), Buffer.from("error forwarding port 81 to pod p: connection refused")])));
      s.end(frame(8, Buffer.from([0x03, 0xe8])));
    });
    const st = await PortForwardStream.connect(url, 81);
    expect(await new Promise((r) => st.on("end", r))).toBe("error forwarding port 81 to pod p: connection refused");
  });

  it("a header naming another port is an error", async () => {
    const url = await server((s) => {
      s.write(frame(2, portHeader(0, 9)));
      s.end(frame(8, Buffer.from([0x03, 0xe8])));
    });
    const st = await PortForwardStream.connect(url, 81);
    expect(await new Promise((r) => st.on("end", r))).toBe("the server opened channel 0 for port 9, not 81");
  });

  it("[LOCAL:]REMOTE as kubectl reads it; bad specs are refused", () => {
    expect(parsePortSpec("8080")).toEqual({ local: 8080, remote: 8080 });
    expect(parsePortSpec("9000:80")).toEqual({ local: 9000, remote: 80 });
    expect(parsePortSpec(":80")).toEqual({ local: 0, remote: 80 });
    expect(parsePortSpec("0:80")).toEqual({ local: 0, remote: 80 });
    for (const bad of ["", "a", "80:", "1:2:3", "0", "70000", "80:70000"]) expect(() => parsePortSpec(bad), bad).toThrow(/port spec/);
  });
});
