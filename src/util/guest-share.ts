// The VM's shared filesystem as both sides name it: the tag QEMU's virtio-9p device carries (Kata's
// name), and how the guest mounts it. The host hands it to the agent as CreateSandbox's storage; a
// warm VM's agent also mounts it for its rehearsal (mock-agent/rehearse.ts), before any sandbox.
export const SHARE_TAG = "kataShared";
export const SHARE_9P_OPTIONS: readonly string[] = ["trans=virtio", "version=9p2000.L", "cache=none"];
