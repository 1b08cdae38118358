// One figure for the host agent's lifeline (src/mock-agent/lifeline.ts) and a warm QEMU VM's keeper
// (src/hypervisor/qemu/warm.ts, native/vm-keeper.c's --claim): the mock agent may share only small
// utilities with the shim's layers, so it lives here.

/**
 * A warm sandbox adopted for a shim that never takes it over (the factory died between the
 * adoption and its answer, and the shim booted its own) ends this long after, instead of living,
 * unused, as long as that shim.
 */
export const UNCLAIMED_MS = 30_000;
