// native/oneshot.c against the TypeScript shim, on the same inputs: the
// launcher must print what `start` and `delete` print, leave the same files,
// launch the same daemon and refuse the same inputs with the same words, and
// it must really take its own path in the usual cases (else this would only
// compare the TypeScript shim with itself). Needs `npm run build` (the bundle
// and bin/containerd-shim-shimlab-v2, the launcher).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { native } from "../../src/native";
import { TYPE_KEYS, SANDBOX_ID_KEYS } from "../../src/pod/container-type";
import { DEFAULT_SOCKET_DIR, SOCKET_PATH_LIMIT } from "../../src/shim/address";
import { MAX_IDENTIFIER_LENGTH } from "../../src/shim/identifiers";
import { MAX_ANNOTATION_BYTES } from "../../src/shim/bundle";
import { SOCKET_DIR_LINK } from "../../src/shim/start-v2";
import { loadConfig } from "../../src/shim/config";
import { DEFAULT_FACTORY_SOCKET } from "../../src/hypervisor/factory/protocol";
import { HANDOFF_VERSION } from "../../src/shim/handoff";
import { sha256Hex } from "../../src/util/sha256";
import { Any } from "../../src/gen/google.protobuf";
import { Options as RuntimeOptions } from "../../src/gen/runtimeoptions.v1";

const ROOT = path.resolve(__dirname, "../..");
const FAST = path.join(ROOT, "bin", "containerd-shim-shimlab-v2");
const NODE_SHIM = path.join(ROOT, "bin", "containerd-shim-shimlab-v2.js");
const NS = "oneshot";
const ADDRESS = "/run/containerd/containerd.sock";

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "oneshot-test-"));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface Layout {
  /** config.json's text; undefined: no config.json */
  config?: string;
  /** what else to lay out, given the dirs */
  extra?: (d: Dirs) => void;
}
interface Dirs {
  bundle: string;
  sock: string;
  run: string;
}
interface Outcome {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  /** the launcher's own word that it handed over, and why */
  handedOver: string | null;
  files: Record<string, string>;
}

/** Everything under dir, as relative path → content (or "<dir>", "<socket>", "-> target"). */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(work, p);
      if (e.isDirectory()) {
        out[rel] = "<dir>";
        walk(p);
      } else if (e.isSymbolicLink()) out[rel] = "-> " + fs.readlinkSync(p);
      else if (e.isSocket()) out[rel] = "<socket>";
      else if (e.isFIFO()) out[rel] = "<fifo>";
      else out[rel] = e.name === "shim.pid" ? "<pid>" : fs.readFileSync(p, "utf8");
    }
  };
  walk(dir);
  return out;
}

const daemons: number[] = [];

/** Lays out a fresh bundle, socket dir and run dir at the same paths, and runs one shim in it. */
function runOne(bin: string, id: string, action: string, layout: Layout, opts: { args?: string[]; stdin?: Buffer; inspect?: (d: Dirs, o: Outcome) => void; bundleOnly?: boolean; env?: NodeJS.ProcessEnv } = {}): Outcome {
  fs.rmSync(path.join(work, "case"), { recursive: true, force: true });
  const d: Dirs = { bundle: path.join(work, "case", "bundles", id), sock: path.join(work, "case", "s"), run: path.join(work, "case", "run") };
  fs.mkdirSync(path.join(d.bundle, "rootfs"), { recursive: true });
  if (layout.config !== undefined) fs.writeFileSync(path.join(d.bundle, "config.json"), layout.config);
  // containerd's log fifo, as it makes it before `start`: here with no reader, so a daemon's log goes
  // nowhere and leaves nothing (else a daemon killed a little later than the other would have made a
  // `log` file the other did not)
  if (action === "start") spawnSync("mkfifo", [path.join(d.bundle, "log")]);
  layout.extra?.(d);
  const env: NodeJS.ProcessEnv = { ...process.env, SHIMLAB_SOCKET_DIR: d.sock, SHIMLAB_RUN_DIR: d.run, SHIMLAB_ONESHOT_DEBUG: "1", ...opts.env };
  for (const k of ["MAX_SHIM_VERSION", "SHIMLAB_SHIM_PROTOCOL", "SHIMLAB_TRACE", "SHIMLAB_NO_BUNDLE", "SHIMLAB_NO_FAST", "NODE_OPTIONS"]) delete env[k];
  const args = opts.args ?? ["-namespace", NS, "-address", ADDRESS, "-publish-binary", "/usr/bin/containerd", "-id", id, "-bundle", d.bundle, action];
  const r = spawnSync(bin, args, { cwd: d.bundle, env, input: opts.stdin ?? Buffer.alloc(0), stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"] });
  const stderr = r.stderr.toString();
  const m = /^shimlab oneshot: to node: (.*)$/m.exec(stderr);
  const o: Outcome = { code: r.status, stdout: r.stdout, stderr: stderr.replace(/^shimlab oneshot: to node: .*\n/m, ""), handedOver: m ? m[1] : null, files: {} };
  const pidFile = path.join(d.bundle, "shim.pid");
  if (fs.existsSync(pidFile)) daemons.push(Number(fs.readFileSync(pidFile, "utf8")));
  opts.inspect?.(d, o);
  o.files = tree(opts.bundleOnly ? d.bundle : path.join(work, "case"));
  return o;
}

/** containerd.task.v2.DeleteResponse's fields: 1 pid, 2 exit_status, 3 exited_at {1 seconds, 2 nanos}. */
function decodeDelete(b: Buffer): { pid: number; status: number; sec: number; nanos: number } {
  let i = 0;
  const varint = () => {
    let v = 0,
      mul = 1;
    for (;;) {
      const c = b[i++];
      v += (c & 0x7f) * mul;
      mul *= 128;
      if (c < 0x80) return v;
    }
  };
  const r = { pid: 0, status: 0, sec: 0, nanos: 0 };
  while (i < b.length) {
    const tag = varint();
    if (tag === 8) r.pid = varint();
    else if (tag === 16) r.status = varint();
    else if (tag === 26) {
      const end = varint() + i;
      while (i < end) {
        const t = varint();
        if (t === 8) r.sec = varint();
        else if (t === 16) r.nanos = varint();
        else throw new Error(`timestamp field ${t}`);
      }
    } else throw new Error(`DeleteResponse field tag ${tag}`);
  }
  return r;
}

function killDaemons() {
  for (const pid of daemons.splice(0)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {}
  }
}
afterAll(killDaemons);

const spec = (annotations?: Record<string, string>, more: Record<string, unknown> = {}) =>
  JSON.stringify({ ociVersion: "1.0.2", process: { args: ["/bin/true"], cwd: "/" }, root: { path: "rootfs" }, ...more, ...(annotations ? { annotations } : {}) });
const podContainer = (sandbox: string) => spec({ "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sandbox });

/** Runs both, checks the launcher took its own path (or handed over) as expected, and that both ended alike. */
function same(id: string, action: string, layout: Layout, expectFast: boolean, opts: Parameters<typeof runOne>[4] = {}) {
  const fast = runOne(FAST, id, action, layout, opts);
  const ts = runOne(NODE_SHIM, id, action, layout, opts);
  if (expectFast) expect(fast.handedOver, `the launcher handed over: ${fast.handedOver}`).toBeNull();
  else expect(fast.handedOver, "the launcher did not hand over").not.toBeNull();
  expect(ts.handedOver).toBeNull();
  expect({ code: fast.code, stderr: fast.stderr }).toEqual({ code: ts.code, stderr: ts.stderr });
  expect(fast.files).toEqual(ts.files);
  if (action === "delete" && ts.code === 0) {
    const [a, b] = [decodeDelete(fast.stdout), decodeDelete(ts.stdout)];
    expect({ pid: a.pid, status: a.status }).toEqual({ pid: b.pid, status: b.status });
    expect(Math.abs(a.sec - b.sec)).toBeLessThanOrEqual(5);
    expect(a.nanos % 1e6).toBe(0); // a JS Date's milliseconds, as the TypeScript side writes them
  } else {
    expect(fast.stdout.toString()).toBe(ts.stdout.toString());
  }
  return { fast, ts };
}

describe("the one-shot launcher against the TypeScript shim", () => {
  it("holds the TypeScript rules' constants", () => {
    const r = JSON.parse(spawnSync(FAST, [], { env: { SHIMLAB_ONESHOT_RULES: "1" } }).stdout.toString());
    expect(r).toEqual({
      typeKeys: [...TYPE_KEYS],
      sandboxIdKeys: [...SANDBOX_ID_KEYS],
      defaultSocketDir: DEFAULT_SOCKET_DIR,
      socketPathLimit: SOCKET_PATH_LIMIT,
      maxIdentifierLength: MAX_IDENTIFIER_LENGTH,
      maxAnnotationBytes: MAX_ANNOTATION_BYTES,
      defaultRunRoot: "/run/shimlab",
      sigkillStatus: 137,
      socketDirLink: SOCKET_DIR_LINK,
      defaultFactorySocket: DEFAULT_FACTORY_SOCKET,
      handoffVersion: HANDOFF_VERSION,
    });
  });

  // The launcher reads [factory] only to decide whether to ask the factory for a parked daemon,
  // which then checks the configuration with loadConfig itself: whatever it finds enabled, the
  // TypeScript finds enabled with the same socket; the plain forms it must find.
  describe("[factory] as the launcher reads it", () => {
    // made in a hook, not as the suite is collected: a run that selects none of its tests runs no afterAll
    let dir = "";
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-oneshot-factory-"));
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
    const scan = (text: string): string | null => {
      const file = path.join(dir, "c.toml");
      fs.writeFileSync(file, text);
      const out = spawnSync(FAST, [], { env: { SHIMLAB_ONESHOT_FACTORY_OF: file } }).stdout.toString().trim();
      return out || null;
    };
    const ts = (text: string): string | null => {
      const file = path.join(dir, "c.toml");
      fs.writeFileSync(file, text);
      try {
        const f = loadConfig(file, {}).factory;
        return f.enable ? f.socket : null;
      } catch {
        return null;
      }
    };
    const plain: [string, string][] = [
      ["enable and a socket", `[factory]\nenable = true\nsocket = "/x/f.sock"\npool_size = 2\n`],
      ["the default socket", `[factory]\nenable = true\n`],
      ["a literal string, comments, other tables", `hypervisor = "none"\n# [factory] in a comment\n[agent]\nruntime = "host"\n[ factory ]  # warm\n  enable=true # yes\n  socket = '/y/f.sock'\n  daemon_pool_size = 1\n[qemu]\nmachine = "q35"\n`],
    ];
    for (const [name, text] of plain)
      it(`finds it: ${name}`, () => {
        expect(scan(text)).not.toBeNull();
        expect(scan(text)).toBe(ts(text));
      });
    const others: [string, string][] = [
      ["no [factory]", `hypervisor = "none"\n`],
      ["enable = false", `[factory]\nenable = false\nsocket = "/x/f.sock"\n`],
      ["an unknown key (loadConfig refuses the file)", `[factory]\nenable = true\nwarm = 3\n`],
      ["a dotted root key", `factory.enable = true\n`],
      ["an inline table", `factory = { enable = true }\n`],
      ["[factory] twice", `[factory]\nenable = true\n[factory]\nenable = true\n`],
      ["a sub-table", `[factory]\nenable = true\n[factory.x]\ny = 1\n`],
      ["a multi-line string", `x = """\n[factory]\nenable = true\n"""\n`],
      ["an escaped socket", `[factory]\nenable = true\nsocket = "/x/\\u0066.sock"\n`],
      ["a relative socket", `[factory]\nenable = true\nsocket = "f.sock"\n`],
      ['enable = "true"', `[factory]\nenable = "true"\n`],
      ["a table after it, then enable", `[factory]\nsocket = "/x/f.sock"\n[agent]\nenable = true\n`],
    ];
    for (const [name, text] of others)
      it(`never finds what loadConfig does not: ${name}`, () => {
        const c = scan(text);
        if (c !== null) expect(c).toBe(ts(text));
      });
    it("a missing or unreadable file: nothing", () => {
      expect(spawnSync(FAST, [], { env: { SHIMLAB_ONESHOT_FACTORY_OF: path.join(dir, "none.toml") } }).stdout.toString()).toBe("");
    });
  });

  describe("delete", () => {
    it("a single container whose shim is gone: its own path, the same DeleteResponse", () => {
      const { fast } = same("c1", "delete", { config: spec() }, true);
      expect(decodeDelete(fast.stdout)).toMatchObject({ pid: 0, status: 137 });
    });
    it("no config.json, -bundle empty (the cwd): its own path", () => {
      same("c1", "delete", { config: undefined }, true, { args: ["-namespace", NS, "-address", ADDRESS, "-id", "c1", "-bundle", "", "delete"] });
    });
    for (const [name, cfg] of [
      ["a pod's container", podContainer("pod1")],
      ["a pod's sandbox", spec({ "io.kubernetes.cri.container-type": "podsandbox" })],
      ["CRI-O's keys, escaped", String.raw`{"annotations": {"io.kubernetes.cri-o.Container\u0054ype": "container", "io.kubernetes.cri-o.SandboxID": "p\u006fd2", "junk": "\u00e9\ud83d\ude00\n"}}`],
      ["an empty first sandbox id", spec({ "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "", "io.kubernetes.sandbox.id": "pod3" })],
      ["the last of repeated keys", '{"annotations": {"io.kubernetes.cri.container-type": "container"}, "annotations": {}, "process": {"args": 1, "args": ["a"]}}'],
      ["unicode elsewhere", spec(undefined, { hostname: "h\u00e9\u{1f600}", n: [1.5e-3, -0, true, null, {}] })],
    ] as const) {
      it(`${name}: its own path`, () => {
        same("c1", "delete", { config: cfg }, true);
      });
    }
    for (const [name, cfg] of [
      ["invalid JSON (a single container to the TypeScript side)", "{"],
      ["a BOM", "\ufeff" + spec()],
      ["a raw control character in a string", '{"hostname": "a\tb"}'],
      ["a trailing comma", '{"annotations": {},}'],
      ["an unknown container type", spec({ "io.kubernetes.cri.container-type": "pod" })],
      ["a container without a sandbox id", spec({ "io.kubernetes.cri.container-type": "container" })],
      ["an annotation that is not a string", '{"annotations": {"a": 1}}'],
      ["an invalid sandbox id", podContainer("../x")],
    ] as const) {
      it(`${name}: handed over, and ends the same`, () => {
        same("c1", "delete", { config: cfg }, false);
      });
    }
    it("a run dir left behind: handed over, and removed the same", () => {
      same("c1", "delete", { config: spec(), extra: (d) => fs.mkdirSync(path.join(d.run, NS, "c1", "agent"), { recursive: true }) }, false);
    });
    // containerd runs `delete` as the daemon's connection drops, often before the daemon has unlinked its socket
    const staleSocket = (group: string) => (d: Dirs) => {
      fs.mkdirSync(d.sock, { recursive: true });
      fs.closeSync(native().listenUnix(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/${group}`)), 8));
    };
    it("a stale socket (nobody listens): its own path, removed the same", () => {
      const { fast } = same("c1", "delete", { config: spec(), extra: staleSocket("c1") }, true);
      expect(Object.values(fast.files)).not.toContain("<socket>");
    });
    it("a pod's container beside a stale sandbox socket: its own path, the socket left to the sandbox's delete", () => {
      const { fast } = same("c1", "delete", { config: podContainer("pod2"), extra: staleSocket("pod2") }, true);
      expect(Object.values(fast.files)).toContain("<socket>");
    });
    it("a file that is no socket at the group's socket path: handed over (so the launcher looked there)", () => {
      const file = (d: Dirs) => (fs.mkdirSync(d.sock, { recursive: true }), fs.writeFileSync(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/pod2`)), ""));
      same("c1", "delete", { config: podContainer("pod2"), extra: file }, false);
    });
    it("a pod's container whose sandbox shim still serves: its own path, nothing cleaned", () => {
      let fd = -1;
      const serve = (d: Dirs) => {
        fs.mkdirSync(d.sock, { recursive: true });
        fd = native().listenUnix(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/pod2`)), 8);
      };
      const close = () => fs.closeSync(fd);
      for (const cfg of [podContainer("pod2"), String.raw`{"annotations": {"io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.cri.sandbox-id": "", "io.kubernetes.cri-o.SandboxID": "p\u006fd2"}}`]) {
        same("c1", "delete", { config: cfg, extra: serve }, true, { inspect: close });
      }
    });
    it("a single container whose shim still serves (a run dir too): its own path, nothing cleaned", () => {
      let fd = -1;
      const serve = (d: Dirs) => {
        fs.mkdirSync(d.sock, { recursive: true });
        fs.mkdirSync(path.join(d.run, NS, "c1"), { recursive: true });
        fd = native().listenUnix(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/c1`)), 8);
      };
      const { fast } = same("c1", "delete", { config: spec(), extra: serve }, true, { inspect: () => fs.closeSync(fd) });
      expect(Object.keys(fast.files)).toContain("case/run/oneshot/c1");
    });
    // The last Delete answers before the sandbox's stop ends (task-service.ts): `delete` finds the shim serving and its VM record there.
    const servedWithRecord = (record: string | null, group = "c1") => {
      let fd = -1;
      const serve = (d: Dirs) => {
        fs.mkdirSync(d.sock, { recursive: true });
        fs.mkdirSync(path.join(d.run, NS, group), { recursive: true });
        if (record !== null) fs.writeFileSync(path.join(d.run, NS, group, "vm.json"), record);
        fd = native().listenUnix(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/${group}`)), 8);
      };
      return { extra: serve, inspect: () => fs.closeSync(fd) };
    };
    // no runcRoot, dirs or nics: nothing a reap could touch outside the case's directory
    const record = (pid: unknown) => JSON.stringify({ kind: "none", pid, startTime: "1", agentUrl: "unix:///nonexistent" });
    it("a shim still serving, its sandbox stopping (a VM record): its own path, the record's pid reported, nothing cleaned", () => {
      const s1 = servedWithRecord(record(4242));
      const { fast } = same("c1", "delete", { config: spec(), extra: s1.extra }, true, { inspect: s1.inspect });
      expect(decodeDelete(fast.stdout)).toMatchObject({ pid: 4242, status: 137 });
      expect(Object.keys(fast.files)).toContain("case/run/oneshot/c1/vm.json");
      const s2 = servedWithRecord(`{"pid": 1, "pid": 2147483647, "nested": {"pid": 3}}`, "pod2");
      const { fast: f2 } = same("c1", "delete", { config: podContainer("pod2"), extra: s2.extra }, true, { inspect: s2.inspect });
      expect(decodeDelete(f2.stdout).pid).toBe(2147483647);
    });
    for (const [name, rec] of [
      ["invalid JSON", "{"],
      ["a pid that is a string", record("12")],
      ["a fractional pid", record(1.5)],
      ["a pid beyond int32", record(2 ** 31)],
      ["a negative pid", record(-1)],
      ["an exponent", '{"pid": 1e3}'],
    ] as const) {
      it(`a shim still serving beside a VM record with ${name}: handed over, and ends the same`, () => {
        const sr = servedWithRecord(rec);
        same("c1", "delete", { config: spec(), extra: sr.extra }, false, { inspect: sr.inspect });
      });
    }
    it("a stopping marker and no shim serving (a daemon killed mid-stop): handed over, and removed the same", () => {
      const left = (d: Dirs) => {
        fs.mkdirSync(d.sock, { recursive: true });
        fs.writeFileSync(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/c1`) + ".stopping"), "999999999 1\n");
      };
      const { fast } = same("c1", "delete", { config: spec(), extra: left }, false);
      expect(Object.keys(fast.files).filter((f) => f.endsWith(".stopping"))).toEqual([]);
    });
    it("a VM record and no shim serving: handed over (the TypeScript side reaps)", () => {
      const dead = (d: Dirs) => {
        fs.mkdirSync(path.join(d.run, NS, "c1"), { recursive: true });
        fs.writeFileSync(path.join(d.run, NS, "c1", "vm.json"), record(999_999_999)); // no such pid
      };
      same("c1", "delete", { config: spec(), extra: dead }, false);
    });
    it("a socket that still accepts while the daemon in shim.pid is gone (a SIGKILLed daemon's files closing): cleaned up as a dead shim's", () => {
      let fd = -1;
      const dying = (d: Dirs) => {
        fs.mkdirSync(d.sock, { recursive: true });
        fs.writeFileSync(path.join(d.bundle, "shim.pid"), "999999999");
        fd = native().listenUnix(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/c1`)), 8);
      };
      const { fast } = same("c1", "delete", { config: spec(), extra: dying }, true, { inspect: () => fs.closeSync(fd) });
      expect(Object.values(fast.files)).not.toContain("<socket>");
      // and with the daemon alive (this process), the shim is left to itself
      const alive = (d: Dirs) => {
        fs.mkdirSync(d.sock, { recursive: true });
        fs.writeFileSync(path.join(d.bundle, "shim.pid"), String(process.pid));
        fd = native().listenUnix(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/c1`)), 8);
      };
      const { fast: f2 } = same("c1", "delete", { config: spec(), extra: alive }, true, { inspect: () => fs.closeSync(fd) });
      expect(Object.values(f2.files)).toContain("<socket>");
      const garbled = (d: Dirs) => (alive(d), fs.writeFileSync(path.join(d.bundle, "shim.pid"), "12x"));
      same("c1", "delete", { config: spec(), extra: garbled }, false, { inspect: () => fs.closeSync(fd) });
    });
    it("an invalid id, an unknown flag, an address to normalise: handed over", () => {
      same("a/b", "delete", { config: spec() }, false);
      same("c1", "delete", { config: spec() }, false, { args: ["-namespace", NS, "-nope", "-id", "c1", "delete"] });
      same("c1", "delete", { config: spec() }, false, { args: ["-namespace", NS, "-address", "/run//containerd/../c.sock", "-id", "c1", "delete"] });
    });
  });

  describe("start", () => {
    it("a pod's container joining its sandbox's shim: its own path, the same address", () => {
      let fd = -1;
      const serve = (d: Dirs) => {
        fs.mkdirSync(d.sock, { recursive: true });
        fd = native().listenUnix(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/pod1`)), 8);
      };
      const close = () => fs.closeSync(fd);
      const fast = runOne(FAST, "c2", "start", { config: podContainer("pod1"), extra: serve }, { inspect: close });
      const ts = runOne(NODE_SHIM, "c2", "start", { config: podContainer("pod1"), extra: serve }, { inspect: close });
      expect(fast.handedOver).toBeNull();
      expect(fast.stdout.toString()).toMatch(/^unix:\/\/.*\/s\/[0-9a-f]{64}$/);
      expect({ code: fast.code, out: fast.stdout.toString(), err: fast.stderr, files: fast.files }).toEqual({ code: ts.code, out: ts.stdout.toString(), err: ts.stderr, files: ts.files });
    });
    it("a new single container: its own path, the same daemon launched the same way", () => {
      const daemon = (d: Dirs, o: Outcome) => {
        const pid = Number(fs.readFileSync(path.join(d.bundle, "shim.pid"), "utf8"));
        // posix_spawn returns once the child has let go of our memory, which is before execve has
        // laid out the new argv: the launcher can be gone before /proc shows the daemon's cmdline
        let argv: string[] = [];
        for (let i = 0; i < 400 && !argv.length; i++) {
          argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, -1);
          if (!argv.length) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        }
        if (!argv.length) throw new Error(`daemon ${pid} shows no argv: ${fs.readFileSync(`/proc/${pid}/stat`, "utf8")}`);
        const env = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean).sort();
        const fds = fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
        const targets = fds.filter((n) => n <= 3).map((n) => fs.readlinkSync(`/proc/${pid}/fd/${n}`).replace(/\d+/g, "N"));
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
        (o as Outcome & { daemon: unknown }).daemon = { argv0: path.basename(argv[0]), argv: argv.slice(1), env, targets, sessionLeader: Number(stat[3]) === pid, cwd: fs.readlinkSync(`/proc/${pid}/cwd`) };
        process.kill(-pid, "SIGKILL");
      };
      // neither reaches the daemon: a protocol only start-v2 may choose, and Node's CA bundle
      const dropped = { SHIMLAB_DAEMON_PROTOCOL: "grpc", NODE_EXTRA_CA_CERTS: "/nonexistent.pem", ONESHOT_KEPT: "yes" };
      // the bundle only: the daemon was booting its agent in the run dir when it was killed
      const fast = runOne(FAST, "c3", "start", { config: spec() }, { inspect: daemon, bundleOnly: true, env: dropped }) as Outcome & { daemon: unknown };
      const ts = runOne(NODE_SHIM, "c3", "start", { config: spec() }, { inspect: daemon, bundleOnly: true, env: dropped }) as Outcome & { daemon: unknown };
      expect(Object.keys(fast.files).sort()).toEqual(["case/bundles/c3/address", "case/bundles/c3/config.json", "case/bundles/c3/log", "case/bundles/c3/rootfs", "case/bundles/c3/shim.pid"]);
      expect(fast.handedOver).toBeNull();
      expect(fast.code).toBe(0);
      expect(fast.daemon).toMatchObject({ argv0: "node", sessionLeader: true });
      const env = (fast.daemon as { env: string[] }).env;
      expect(env).toContain("ONESHOT_KEPT=yes");
      expect(env.filter((e) => /^(SHIMLAB_DAEMON_PROTOCOL|NODE_EXTRA_CA_CERTS)=/.test(e))).toEqual([]);
      expect({ out: fast.stdout.toString(), err: fast.stderr, files: fast.files, daemon: fast.daemon }).toEqual({ out: ts.stdout.toString(), err: ts.stderr, files: ts.files, daemon: ts.daemon });
    });
    it("a new single container while the shim its id had before still stops its sandbox: handed over, waits for that shim's end, reaps what it left when it died mid-stop, then a daemon of its own", () => {
      // the old shim as src/shim/stopping.ts has it: its socket served and <socket>.stopping naming it until it exits
      const STOPS_MS = 400;
      const OLD_RECORD = JSON.stringify({ kind: "none", pid: 999_999_999, startTime: "1", agentUrl: "unix:///nonexistent" });
      const oldShim = (d: Dirs) => {
        fs.mkdirSync(d.sock, { recursive: true });
        const sock = path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/c5`));
        const code = `const net=require("net"),fs=require("fs");const st=fs.readFileSync("/proc/self/stat","utf8").split(") ")[1].split(" ")[19];
          net.createServer().listen(process.argv[1],()=>{fs.writeFileSync(process.argv[1]+".stopping",process.pid+" "+st+"\\n");setTimeout(()=>process.exit(0),${STOPS_MS})});`;
        // it dies without its stop's end (the marker stays): its agent's record is for start to reap
        fs.mkdirSync(path.join(d.run, NS, "c5"), { recursive: true });
        fs.writeFileSync(path.join(d.run, NS, "c5", "vm.json"), OLD_RECORD);
        const child = spawn(process.execPath, ["-e", code, sock], { stdio: "ignore", detached: true });
        child.unref();
        for (let i = 0; i < 400 && !fs.existsSync(sock + ".stopping"); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      };
      const timed = (bin: string) => {
        const t0 = performance.now();
        const o = runOne(bin, "c5", "start", { config: spec(), extra: oldShim }, { bundleOnly: false, inspect: (d) => {
          const pid = Number(fs.readFileSync(path.join(d.bundle, "shim.pid"), "utf8"));
          process.kill(-pid, "SIGKILL");
        } });
        return { o, ms: performance.now() - t0 };
      };
      const fast = timed(FAST);
      const ts = timed(NODE_SHIM);
      expect(fast.o.handedOver).toBe("bind");
      for (const { o, ms } of [fast, ts]) {
        expect(o.code).toBe(0);
        expect(ms).toBeGreaterThan(STOPS_MS / 2);
        // a daemon of its own on the socket (the old one's marker gone), not the old shim's address written for containerd to join
        expect(Object.entries(o.files).filter(([f]) => f.startsWith("case/s/")).map(([, v]) => v)).toEqual(["<socket>"]);
        expect(o.files["case/bundles/c5/shim.pid"]).toBe("<pid>");
        // the new daemon may have made its own run dir by now, never with the old record
        expect(o.files["case/run/oneshot/c5/vm.json"]).not.toBe(OLD_RECORD);
      }
    });

    it("a stopping marker with no socket (a shim killed between the two): its own path, and the new daemon removes the marker as it serves", () => {
      const marker = (d: Dirs) => {
        fs.mkdirSync(d.sock, { recursive: true });
        fs.writeFileSync(path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/c6`) + ".stopping"), "999999999 1\n");
      };
      const gone = (d: Dirs, o: Outcome) => {
        const f = path.join(d.sock, sha256Hex(`${ADDRESS}/${NS}/c6`) + ".stopping");
        for (let i = 0; i < 600 && fs.existsSync(f); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        (o as Outcome & { markerLeft: boolean }).markerLeft = fs.existsSync(f);
        process.kill(-Number(fs.readFileSync(path.join(d.bundle, "shim.pid"), "utf8")), "SIGKILL");
      };
      const fast = runOne(FAST, "c6", "start", { config: spec(), extra: marker }, { inspect: gone }) as Outcome & { markerLeft: boolean };
      expect(fast.handedOver).toBeNull();
      expect(fast.code).toBe(0);
      expect(fast.markerLeft).toBe(false);
    });

    it("CRI's runtime options on stdin (containerd 1.6/1.7): its own path, the daemon told the ConfigPath as the TypeScript shim tells it", () => {
      const cfg = path.join(work, "handler.toml");
      const daemonEnv = (d: Dirs, o: Outcome) => {
        const pid = Number(fs.readFileSync(path.join(d.bundle, "shim.pid"), "utf8"));
        let env: string[] = [];
        for (let i = 0; i < 400 && !env.some((e) => e.startsWith("PATH=")); i++) {
          env = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
          if (!env.length) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        }
        (o as Outcome & { config?: string[] }).config = env.filter((e) => e.startsWith("SHIMLAB_CONFIG="));
        process.kill(-pid, "SIGKILL");
      };
      // a SHIMLAB_CONFIG of containerd's environment gives way to the handler's
      const opts = { inspect: daemonEnv, bundleOnly: true, env: { SHIMLAB_CONFIG: "/from/containerd.toml" } };
      for (const typeUrl of ["runtimeoptions.v1.Options", "type.googleapis.com/runtimeoptions.v1.Options"]) {
        const stdin = Buffer.from(Any.encode({ typeUrl, value: RuntimeOptions.encode({ typeUrl: "", configPath: cfg }) }));
        const fast = runOne(FAST, "c5", "start", { config: spec() }, { ...opts, stdin }) as Outcome & { config?: string[] };
        const ts = runOne(NODE_SHIM, "c5", "start", { config: spec() }, { ...opts, stdin }) as Outcome & { config?: string[] };
        expect(fast.handedOver).toBeNull();
        expect(fast.config).toEqual([`SHIMLAB_CONFIG=${cfg}`]);
        expect({ out: fast.stdout.toString(), err: fast.stderr, files: fast.files, config: fast.config }).toEqual({ out: ts.stdout.toString(), err: ts.stderr, files: ts.files, config: ts.config });
      }
      // no ConfigPath: containerd's environment stands
      const bare = runOne(FAST, "c5", "start", { config: spec() }, { ...opts, stdin: Buffer.from(Any.encode({ typeUrl: RuntimeOptions.typeName, value: new Uint8Array() })) }) as Outcome & { config?: string[] };
      expect([bare.handedOver, bare.config]).toEqual([null, ["SHIMLAB_CONFIG=/from/containerd.toml"]]);
      // what the launcher does not read itself goes to the TypeScript shim: a config body, runc's options, a stray field
      for (const stdin of [
        // config_body = 3 (containerd's runtimeoptions.v1, which shimlab's proto leaves out)
        Any.encode({ typeUrl: RuntimeOptions.typeName, value: Buffer.concat([RuntimeOptions.encode({ typeUrl: "", configPath: cfg }), Buffer.from([0x1a, 0x01, 0x78])]) }),
        Any.encode({ typeUrl: "containerd.runc.v1.Options", value: new Uint8Array([0x10, 0x01]) }),
        Buffer.concat([Buffer.from(Any.encode({ typeUrl: RuntimeOptions.typeName, value: new Uint8Array() })), Buffer.from([0x18, 0x01])]),
      ]) {
        const o = runOne(FAST, "c5", "start", { config: spec() }, { ...opts, stdin: Buffer.from(stdin) });
        expect(o.handedOver).toBe("options on stdin");
      }
    });
    it("a sandbox with no shim serving it, a bad spec, a bad id, options on stdin: handed over, refused alike", () => {
      same("c4", "start", { config: podContainer("pod9") }, false);
      same("c4", "start", { config: '{"process": null}' }, false);
      same("c4", "start", { config: '{"process": {"args": [1]}}' }, false);
      same("c4", "start", { config: undefined }, false);
      same("-x", "start", { config: spec() }, false);
      // containerd 2.x's bootstrap, for another task: refused with what it held, so stdin reached the TypeScript side
      const { ts } = same("c4", "start", { config: spec() }, false, { stdin: Buffer.from('{"instance_id": "other", "namespace": "oneshot"}') });
      expect(ts.stderr).toContain('"other"');
    });
  });
});
