// hypervisor = "qemu": filled in by the VM work (issue 5). Until then a config
// asking for it gets a clear Unimplemented, never a fake VM.
import { unimplemented } from "../../ttrpc/status";
import type { Hypervisor, SandboxVm, StartOptions } from "../types";

export class QemuHypervisor implements Hypervisor {
  readonly kind = "qemu" as const;

  static configFrom(_raw: Record<string, unknown>, _source: string): Record<string, unknown> {
    return _raw;
  }

  constructor(readonly config: Record<string, unknown>) {}

  async start(_o: StartOptions): Promise<SandboxVm> {
    throw unimplemented('hypervisor = "qemu" is not available in this build of shimlab');
  }
}
