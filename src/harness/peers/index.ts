export { peersCacheDir, cached, safeName } from "./cache";
export { PrivateApt, type DebianPackage } from "./debian";
export { goBinary, goInstall, goBuild, moduleDigest, type GoBuildOptions } from "./go";
export { INTEROP_MODULE, INTEROP_PROGRAMS, KATA_RUNTIME_MODULE, interopKataVersion, interopProgram, interopPrograms, interopTtrpcVersion, type InteropProgram } from "./interop";
export { CONTAINERD_SERIES, currentContainerd, fetchContainerd, resolveContainerd, type ContainerdPeer, type ContainerdSeries } from "./containerd";
export { critestBinaries, crictlBinary, criToolsVersion, CRI_TOOLS_MODULE_DIR, type CritestBinaries } from "./cri-tools";
export { CRIO_VERSION, CRIO_MODULE, crioPeer, crioMissing, type CrioPeer } from "./crio";
