// The guest's PID 1: a busybox shell script that loads the virtio modules,
// finds the virtio-serial port named agent.channel.0 and execs the mock agent
// on it. No udev in the guest, so the port is found through sysfs
// (/sys/class/virtio-ports/vportNpM/name), not /dev/virtio-ports/.
//
// With the image's /usr on a read-only 9p share (tag shimlabUsr: node, runc and
// the agent's files), init mounts it before anything runs from there; the
// initramfs then holds only busybox, the shared libraries and the modules.
//
// Kernel command line words it reads:
//   shimlab.runtime=<host|runc|crun|auto>   the agent's runtime (default auto: runc when the image has it)
//   shimlab.debug                       agent debug logging
//   shimlab.jitless                     node --jitless (steadier latency under TCG)
//   shimlab.snapshot                    start the agent from its V8 startup snapshot (made under TCG)
//   shimlab.build-snapshot              make that snapshot into the 9p share and power off (image build)
//
// It lives beside the driver, not the image builder (src/guest-image): those
// words are the driver's, and a sandbox compares this script with the one its
// image's manifest records to tell an image made with an older /init.

export const AGENT_PORT_NAME = "agent.channel.0";
/** Printed on the console by init; the host reads the guest's boot progress from these. */
export const INIT_MARK = "shimlab-init:";
/** Where the agent's files live in the guest (the repo's layout: dist/ and native/build/). */
export const GUEST_APP_DIR = "/usr/lib/shimlab";
/** The 9p tag of the image's read-only /usr. */
export const USR_SHARE_TAG = "shimlabUsr";
/**
 * Immutable while any VM uses it, so the guest may cache it without revalidation; 256 KiB
 * messages page node in with few round trips.
 */
export const USR_MOUNT_OPTIONS = "trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144";
/** The agent, bundled into one file, and its V8 startup snapshot (made with --jitless, used only with it). */
export const GUEST_AGENT_BUNDLE = `${GUEST_APP_DIR}/dist/bundle/mock-agent.js`;
export const GUEST_AGENT_SNAPSHOT = `${GUEST_APP_DIR}/agent.blob`;
export const GUEST_SNAPSHOT_ENTRY = `${GUEST_APP_DIR}/dist/bundle/mock-agent-snapshot.js`;
/** Boots the image to make the snapshot (src/guest-image/snapshot.ts), into the 9p share, then powers off. */
export const SNAPSHOT_BUILD_PARAM = "shimlab.build-snapshot";
/** The host asks for the snapshot where the guest's CPU is the one it was made on (TCG's). */
export const SNAPSHOT_PARAM = "shimlab.snapshot";
/** A factory's VM under TCG: its agent rehearses a pod's work before it serves (src/mock-agent/rehearse.ts). */
export const REHEARSE_PARAM = "shimlab.rehearse";
/** The kernel's own: no address-space randomisation in the guest (TCG only, qemu/index.ts). */
export const TCG_FIXED_LAYOUT_PARAM = "norandmaps";
/** The snapshot loads only under the V8 flags it was made with: the guest's default, --jitless. */
export const SNAPSHOT_NODE_FLAGS = ["--jitless"];

export interface GuestInitOptions {
  /** /usr comes from the read-only share USR_SHARE_TAG instead of the initramfs. */
  usrShare?: boolean;
}

export function guestInit(modules: string[], o: GuestInitOptions = {}): string {
  const mountUsr = o.usrShare
    ? `mount -t 9p -o ${USR_MOUNT_OPTIONS} ${USR_SHARE_TAG} /usr || { echo "${INIT_MARK} cannot mount /usr from the 9p share ${USR_SHARE_TAG}"; poweroff -f; }\n`
    : "";
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mkdir -p /proc /sys /dev /tmp /run /root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ln -sf /proc/self/fd /dev/fd
hostname shimlab-guest
ip link set lo up
for m in ${modules.join(" ")}; do
  insmod /lib/modules/$m.ko || echo "${INIT_MARK} insmod $m failed"
done
${mountUsr}CMD=$(cat /proc/cmdline)
RUNTIME=auto; DEBUG=; NODEOPTS=; SNAPSHOT=; BUILD_SNAPSHOT=; REHEARSE=
for w in $CMD; do
  case "$w" in
    shimlab.runtime=*) RUNTIME=\${w#shimlab.runtime=};;
    shimlab.debug) DEBUG=--debug;;
    ${REHEARSE_PARAM}) REHEARSE=--rehearse;;
    shimlab.jitless) NODEOPTS=--jitless;;
    ${SNAPSHOT_PARAM}) SNAPSHOT=1;;
    ${SNAPSHOT_BUILD_PARAM}) BUILD_SNAPSHOT=1;;
  esac
done
if [ -n "$BUILD_SNAPSHOT" ]; then
  mkdir -p /mnt && mount -t 9p -o trans=virtio,version=9p2000.L kataShared /mnt &&
    (cd /tmp && /usr/bin/node ${SNAPSHOT_NODE_FLAGS.join(" ")} --snapshot-blob /mnt/agent.blob --build-snapshot ${GUEST_SNAPSHOT_ENTRY}) ||
    echo "${INIT_MARK} snapshot build failed"
  sync; umount /mnt; poweroff -f
fi
PORT=
i=0
while [ -z "$PORT" ] && [ $i -lt 1000 ]; do
  for n in /sys/class/virtio-ports/*/name; do
    [ -f "$n" ] && [ "$(cat $n)" = "${AGENT_PORT_NAME}" ] && { d=\${n%/name}; PORT=/dev/\${d##*/}; }
  done
  [ -z "$PORT" ] && { i=$((i+1)); usleep 10000; }
done
if [ -z "$PORT" ]; then
  echo "${INIT_MARK} no virtio-serial port named ${AGENT_PORT_NAME}"
  poweroff -f
fi
echo "${INIT_MARK} agent on $PORT at $(cut -d' ' -f1 /proc/uptime) s"
export SHIMLAB_NATIVE=${GUEST_APP_DIR}/native/build/shimlab.node
AGENT=${GUEST_AGENT_BUNDLE}
[ -n "$SNAPSHOT" ] && [ "$NODEOPTS" = --jitless ] && [ -f ${GUEST_AGENT_SNAPSHOT} ] && AGENT="--snapshot-blob ${GUEST_AGENT_SNAPSHOT} mock-agent"
exec /usr/bin/node $NODEOPTS $AGENT --serial "$PORT" --guest --runtime "$RUNTIME" --state-dir /run/shimlab-agent $DEBUG $REHEARSE
`;
}
