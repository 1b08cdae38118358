// The VM's shared filesystem as both sides name it: the tag QEMU's virtio-9p device carries (Kata's
// name), and how the guest mounts it. The host hands it to the agent as CreateSandbox's storage; a
// warm VM's agent also mounts it for its rehearsal (mock-agent/rehearse.ts), before any sandbox.
export const SHARE_TAG = "kataShared";
export const SHARE_9P_OPTIONS: readonly string[] = ["trans=virtio", "version=9p2000.L", "cache=none"];
/** Where the guest mounts the share (Kata's path). */
export const GUEST_SHARED_DIR = "/run/kata-containers/shared/containers";
/** What the guest sees of a host path shared under key (a container's id, or `<id>.m<n>` for one of its mounts). */
export const guestSharedPath = (key: string): string => `${GUEST_SHARED_DIR}/${key}/rootfs`;
