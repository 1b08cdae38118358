// Per-pod hypervisor settings from annotations, the way Kata takes them
// (`io.katacontainers.config.hypervisor.<key>`), but only through the
// configuration's allow-list (Kata's `enable_annotations`): a pod spec is
// user input, and the hypervisor command line runs as root on the host.
//
// Two things differ from Kata on purpose: allow-list entries must match the
// whole key (Kata's unanchored regexp lets "path" enable "jailer_path"), and
// an annotation naming a key shimlab does not know is refused, not ignored.
import { invalidArgument } from "../errdefs";

export const HYPERVISOR_ANNOTATION_PREFIX = "io.katacontainers.config.hypervisor.";

export interface HypervisorOverrides {
  memoryMb?: number;
  vcpus?: number;
  kernelParams?: string;
  machineType?: "q35" | "microvm";
  /** Host paths: honoured only when also listed in the matching valid_*_paths. */
  path?: string;
  kernel?: string;
  initrd?: string;
}

export interface AnnotationPolicy {
  /** Anchored regular expressions over the key after the prefix (Kata's enable_annotations). */
  enable: string[];
  validHypervisorPaths?: string[];
  validKernelPaths?: string[];
  validInitrdPaths?: string[];
}

type Parser = (v: string, key: string, p: AnnotationPolicy) => Partial<HypervisorOverrides>;

const uint = (min: number, max: number) => (v: string, key: string) => {
  if (!/^\d+$/.test(v)) throw invalidArgument(`annotation ${key}=${JSON.stringify(v)}: want an unsigned integer`);
  const n = Number(v);
  if (n < min || n > max) throw invalidArgument(`annotation ${key}=${v}: want ${min}..${max}`);
  return n;
};

const hostPath = (list: keyof AnnotationPolicy, field: "path" | "kernel" | "initrd"): Parser => (v, key, p) => {
  const valid = (p[list] as string[] | undefined) ?? [];
  // Kata's rule: a path annotation must name one of the configured valid paths, globs included.
  if (!valid.some((g) => globMatch(g, v))) throw invalidArgument(`annotation ${key}=${JSON.stringify(v)}: not in ${list.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase())}`);
  return { [field]: v };
};

const KEYS: Record<string, Parser> = {
  default_memory: (v, k) => ({ memoryMb: uint(64, 1 << 20)(v, k) }),
  default_vcpus: (v, k) => ({ vcpus: uint(1, 255)(v, k) }),
  kernel_params: (v, k) => {
    // One argument to -append: nothing that could end it or start another option.
    if (/[\0\n]/.test(v) || v.length > 4096) throw invalidArgument(`annotation ${k}: kernel parameters must be one line under 4096 bytes`);
    return { kernelParams: v };
  },
  machine_type: (v, k) => {
    if (v !== "q35" && v !== "microvm") throw invalidArgument(`annotation ${k}=${JSON.stringify(v)}: want "q35" or "microvm"`);
    return { machineType: v };
  },
  path: hostPath("validHypervisorPaths", "path"),
  kernel: hostPath("validKernelPaths", "kernel"),
  initrd: hostPath("validInitrdPaths", "initrd"),
};

/** The hypervisor overrides a sandbox's annotations ask for, refused with InvalidArgument unless allowed. */
export function hypervisorOverrides(annotations: Record<string, string> | undefined, policy: AnnotationPolicy): HypervisorOverrides {
  const out: HypervisorOverrides = {};
  const allow = policy.enable.map((r) => {
    try {
      return new RegExp(`^(?:${r})$`);
    } catch (e) {
      throw invalidArgument(`enable_annotations entry ${JSON.stringify(r)} is not a valid regular expression: ${(e as Error).message}`);
    }
  });
  for (const [name, value] of Object.entries(annotations ?? {})) {
    if (!name.startsWith(HYPERVISOR_ANNOTATION_PREFIX)) continue;
    const key = name.slice(HYPERVISOR_ANNOTATION_PREFIX.length);
    if (!allow.some((r) => r.test(key))) throw invalidArgument(`annotation ${name} is not enabled (add it to the hypervisor's enable_annotations)`);
    const parse = KEYS[key];
    if (!parse) throw invalidArgument(`annotation ${name} is not a hypervisor setting shimlab knows (known: ${Object.keys(KEYS).join(", ")})`);
    Object.assign(out, parse(value, name, policy));
  }
  return out;
}

/** Shell-style glob (`*`, `?`) over a whole path, as Kata's valid_*_paths use. */
export function globMatch(glob: string, s: string): boolean {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]");
  return new RegExp(`^${re}$`).test(s);
}
