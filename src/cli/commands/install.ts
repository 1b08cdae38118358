// shimlab install [--prefix DIR] [--containerd-config FILE] [--restart] ...
// shimlab uninstall [--prefix DIR] [--containerd-config FILE] [--restart]
import path from "node:path";
import { install, uninstall, restartContainerd, type Step } from "../../install/install";
import { ConfigEditError, type Sandboxer } from "../../install/containerd-config";
import { bool, list, str, withArgs } from "../args";

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");

export function installCommand(argv: string[], action: "install" | "uninstall"): Promise<number> {
  return withArgs([action], argv, (p) => {
    const version = str(p, "config-version") === undefined ? undefined : Number(str(p, "config-version"));
    if (version !== undefined && version !== 2 && version !== 3) throw new Error("--config-version wants 2 or 3");
    return run(action, {
      prefix: str(p, "prefix")!,
      containerdConfig: str(p, "containerd-config"),
      runtimeName: str(p, "runtime-name"),
      shimConfig: str(p, "shim-config"),
      version,
      annotations: list(p, "pod-annotation"),
      restart: bool(p, "restart"),
      copy: bool(p, "copy"),
      root: str(p, "root"),
      sandboxer: action === "install" ? (str(p, "sandboxer") as Sandboxer | undefined) : undefined,
    });
  });
}

interface Opts {
  prefix: string;
  containerdConfig?: string;
  runtimeName?: string;
  shimConfig?: string;
  version?: number;
  annotations: string[];
  restart: boolean;
  copy: boolean;
  root?: string;
  sandboxer?: Sandboxer;
}

function run(action: "install" | "uninstall", { prefix, containerdConfig, runtimeName, shimConfig, version, annotations, restart, copy, root, sandboxer }: Opts): number {
  let steps: Step[];
  try {
    steps =
      action === "install"
        ? install({ prefix, containerdConfig: containerdConfig ?? "/etc/containerd/config.toml", runtimeName, shimConfig, repoRoot: REPO_ROOT, emptyConfigVersion: version, podAnnotations: annotations, copy, root, sandboxer }).steps
        : uninstall({ prefix, containerdConfig, root });
  } catch (e) {
    const msg = e instanceof ConfigEditError ? `containerd config: ${e.message}` : (e as Error).message;
    process.stderr.write(`shimlab ${action}: ${msg}\n`);
    return 1;
  }
  for (const s of steps) process.stdout.write(`${s.changed ? (action === "install" ? "wrote  " : "removed") : "ok     "} ${s.what}\n`);
  if (restart) {
    if (!steps.some((s) => s.changed)) process.stdout.write("nothing changed: containerd not restarted\n");
    else {
      restartContainerd(root);
      process.stdout.write("restarted containerd\n");
    }
  }
  return 0;
}
