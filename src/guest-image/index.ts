// The guest image builder: `shimlab image build` and the harness build with it;
// the QEMU driver only reads the manifest it writes (src/hypervisor/qemu/image-manifest.ts).
export { ensureImage, type GuestImage, type ImageOptions, type ImageRecord } from "./image";
export { buildGuestKernel, findGuestKernel, guestKernel, type GuestKernelBuild } from "./guest-kernel";
export { findKernel, type KernelSource } from "./kernel";
export { GUEST_MODULES, moduleOrder } from "./inputs";
export { cacheRoot, type ImageLayout } from "../hypervisor/qemu/image-manifest";
