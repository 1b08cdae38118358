// The QEMU sandbox settings the harness runs with (tests, scenarios, bench): q35
// under whatever accelerator works, room for the guest's OCI runtime, and a boot
// deadline that a loaded 2-core machine meets under TCG. A sandbox never builds
// its image: whoever uses these builds it first, with runc and crun
// (ensureImage({ runc: true }) from src/guest-image).
//
// crun by default: under TCG a container's create and start in the guest take
// ~0.25 s with crun against ~0.6 s with runc (a Go binary that re-executes
// itself), 0.8 s of a warm pod's 2.56 s (bench/README.md). qemu.test.ts keeps
// runc in the guest.

export type GuestRuntime = "runc" | "crun";

function settings(guestRuntime: GuestRuntime): string[] {
  return ['machine = "q35"', 'accel = "auto"', "memory_mb = 512", "boot_timeout_ms = 120000", `guest_runtime = "${guestRuntime}"`];
}

export const QEMU_HARNESS_SETTINGS = settings("crun");

/** A whole shimlab config file choosing QEMU with those settings. */
export function qemuHarnessConfig(o: { guestRuntime?: GuestRuntime } = {}): string {
  return ['hypervisor = "qemu"', "[qemu]", ...settings(o.guestRuntime ?? "crun")].join("\n") + "\n";
}
