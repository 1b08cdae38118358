#!/usr/bin/env node
// Boot-to-agent-ready of a shimlab QEMU sandbox, next to the floor of the same
// machine: a busybox-only guest that answers on the same virtio-serial port,
// booted with the same kernel and QEMU flags in the same run.
//
//   npm run build && node bench/qemu-boot.mjs [--runs 3] [--machine q35|microvm] [--kernel shimlab|debian]
//                                            [--layout share|initramfs] [--no-jitless] [--smp N]
//
// --kernel: shimlab's guest kernel (the default once `shimlab image build --kernel` built it) or
// Debian's; the floor boots the same kernel. --layout: the image's /usr on a 9p share or in the initramfs.
//
// Both are timed from spawning QEMU to the first answer over agent.channel.0:
// the floor's is an echoed line, shimlab's is the mock agent's Health.Check
// reply over ttrpc. Prints a table and a JSON line. Also: --smp N.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const dist = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "dist");
const { ensureImage, moduleOrder, GUEST_MODULES, guestKernel } = require(`${dist}/guest-image/index.js`);
const { CpioWriter, S_IFDIR, S_IFREG, S_IFCHR } = require(`${dist}/guest-image/cpio.js`);
const { QemuVm } = require(`${dist}/hypervisor/qemu/vm.js`);
const { AgentClient } = require(`${dist}/agent/client.js`);
const { FdLogger } = require(`${dist}/util/logger.js`);

delete process.env.NODE_EXTRA_CA_CERTS;
const argv = process.argv.slice(2);
const opt = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const runs = Number(opt("--runs", "3"));
const machine = opt("--machine", "q35");
const jitless = !argv.includes("--no-jitless"); // as [qemu] jitless defaults
const vcpus = Number(opt("--smp", "1"));
const layout = opt("--layout", "share");
const kernelWanted = opt("--kernel", null);
if (kernelWanted && !["shimlab", "debian"].includes(kernelWanted)) throw new Error(`--kernel ${kernelWanted}: want shimlab or debian`);
const cacheDir = process.env.SHIMLAB_CACHE_DIR || "/var/cache/shimlab";
const kernel = kernelWanted ? guestKernel(kernelWanted, cacheDir) : guestKernel("auto", cacheDir);
const logger = new FdLogger(null);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-bench-boot-"));

const FLOOR_INIT = (mods) => `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in ${mods.join(" ")}; do insmod /lib/modules/$m.ko; done
PORT=
while [ -z "$PORT" ]; do
  for n in /sys/class/virtio-ports/*/name; do [ -f "$n" ] && [ "$(cat $n)" = agent.channel.0 ] && { d=\${n%/name}; PORT=/dev/\${d##*/}; }; done
  [ -z "$PORT" ] && usleep 10000
done
echo "floor: echo on $PORT"
while true; do
  exec 3<>"$PORT"
  while IFS= read -r line <&3; do echo "echo:$line" >&3; done
  exec 3>&-; usleep 20000
done
`;

/** The floor image: busybox, the virtio modules and an echo loop, nothing else (gzip, like a tiny initramfs is). */
async function floorInitrd(k) {
  const mods = k.modulesDir ? moduleOrder(fs.readFileSync(path.join(k.modulesDir, "modules.dep"), "utf8"), GUEST_MODULES.filter((m) => !m.startsWith("9p"))) : [];
  const out = path.join(work, "floor.cpio.gz");
  const z = zlib.createGzip({ level: 1 });
  const f = fs.createWriteStream(out);
  z.pipe(f);
  const w = new CpioWriter(z);
  for (const d of ["bin", "dev", "proc", "sys", "lib", "lib/modules"]) await w.add({ name: d, mode: S_IFDIR | 0o755 });
  await w.add({ name: "dev/console", mode: S_IFCHR | 0o600, rdev: [5, 1] });
  await w.add({ name: "bin/busybox", mode: S_IFREG | 0o755, data: fs.readFileSync(fs.existsSync("/bin/busybox") ? "/bin/busybox" : "/usr/bin/busybox") });
  for (const m of mods) await w.add({ name: `lib/modules/${m.name}.ko`, mode: S_IFREG | 0o644, data: fs.readFileSync(path.join(k.modulesDir, m.rel)) });
  await w.add({ name: "init", mode: S_IFREG | 0o755, data: Buffer.from(FLOOR_INIT(mods.map((m) => m.name))) });
  await w.finish();
  z.end();
  await new Promise((r) => f.on("close", r));
  return out;
}

function tscKhz() {
  const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"));
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

async function once(kind, image, initrd, i) {
  const runDir = path.join(work, `${kind}-${i}`);
  const spec = { machine, accel: "tcg", memoryMb: 512, vcpus, kernel: image.kernel, initrd, usrDir: kind === "floor" ? undefined : image.usrDir ?? undefined, tscKhz: tscKhz(), kernelParams: jitless ? ["shimlab.jitless", ...(kind === "floor" ? [] : ["shimlab.snapshot"])] : [] };
  const t0 = performance.now();
  const vm = await QemuVm.launch({ qemuPath: "qemu-system-x86_64", spec, runDir, logger, bootTimeoutMs: 120_000, readyLine: kind === "floor" ? "floor: echo on" : undefined, share: kind !== "floor" });
  const consoleReady = performance.now() - t0;
  try {
    if (kind === "floor") {
      const s = net.createConnection({ path: vm.agentTransport.path });
      await new Promise((r) => s.once("connect", r));
      s.write("ping\n");
      await new Promise((r) => s.once("data", r));
      s.destroy();
    } else {
      const c = await AgentClient.connect(vm.agentTransport, { timeoutMs: 60_000 });
      c.close();
    }
    const ready = performance.now() - t0;
    // init prints the guest's uptime as it execs node: the kernel's and init's share of the boot.
    const exec = /agent on \S+ at ([\d.]+) s/.exec(fs.readFileSync(vm.consoleLog, "utf8"));
    return { ready, consoleReady, qmp: vm.times.qmpMs, agentExecGuestMs: exec ? Math.round(Number(exec[1]) * 1000) : undefined };
  } finally {
    await vm.stop();
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const image = await ensureImage({ runc: true, kernel, layout });
  const floor = await floorInitrd(kernel);
  const res = { floor: [], shimlab: [] };
  // Interleaved, so both see the same machine load.
  for (let i = 0; i < runs; i++) {
    res.floor.push(await once("floor", image, floor, i));
    res.shimlab.push(await once("shimlab", image, image.initrd, i));
  }
  const f = median(res.floor.map((r) => r.ready));
  const s = median(res.shimlab.map((r) => r.ready));
  const fmt = (xs) => xs.map((r) => Math.round(r.ready)).join(", ");
  console.log(`machine ${machine}, kernel ${kernel.version}${kernel.modulesDir ? " (Debian's)" : " (shimlab's guest kernel)"}, /usr ${image.usrDir ? "on a 9p share" : "in the initramfs"}, ${vcpus} vCPU${jitless ? ", jitless" : ""}, TCG, ${runs} runs each, load average ${os.loadavg()[0].toFixed(1)}`);
  console.log(`busybox floor   ${Math.round(f)} ms median  (${fmt(res.floor)}); initramfs ${(fs.statSync(floor).size / 1e6).toFixed(1)} MB`);
  console.log(`shimlab agent   ${Math.round(s)} ms median  (${fmt(res.shimlab)}); initramfs ${(image.initrdBytes / 1e6).toFixed(1)} MB`);
  console.log(`ratio           ${(s / f).toFixed(2)}x the floor`);
  const execAt = median(res.shimlab.map((r) => r.agentExecGuestMs ?? NaN));
  if (Number.isFinite(execAt)) console.log(`node exec'd at  ${execAt} ms of guest uptime (median): the kernel and init before it, node and the agent after`);
  console.log(JSON.stringify({ bench: "qemu-boot", machine, kernel: kernel.version, layout: image.layout, runs, floorMs: Math.round(f), shimlabMs: Math.round(s), ratio: +(s / f).toFixed(2), raw: res }));
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
