// The QEMU sandbox settings the harness runs with (tests, scenarios): q35 under
// whatever accelerator works, room for runc in the guest, and a boot deadline
// that a loaded 2-core machine meets under TCG. A sandbox never builds its image:
// whoever uses these builds it first, with runc (ensureImage({ runc: true })
// from src/guest-image), which guest_runtime = "runc" needs.
export const QEMU_HARNESS_SETTINGS = ['machine = "q35"', 'accel = "auto"', "memory_mb = 512", "boot_timeout_ms = 120000", 'guest_runtime = "runc"'];

/** A whole shimlab config file choosing QEMU with those settings. */
export function qemuHarnessConfig(): string {
  return ['hypervisor = "qemu"', "[qemu]", ...QEMU_HARNESS_SETTINGS].join("\n") + "\n";
}
