// shimlab install [--prefix DIR] [--containerd-config FILE] [--restart] ...
// shimlab uninstall [--prefix DIR] [--containerd-config FILE] [--restart]
import path from "node:path";
import { install, uninstall, restartContainerd, type Step } from "../../install/install";
import { ConfigEditError, SANDBOXERS, type Sandboxer } from "../../install/containerd-config";

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");

const HELP = `usage: shimlab install [options]
       shimlab uninstall [--prefix DIR] [--containerd-config FILE] [--root DIR] [--restart]

Installs containerd-shim-shimlab-v2 (a launcher running this checkout's build)
in <prefix>/bin, shimlab's config in <prefix>/share/shimlab, and a runtime in
containerd's config (version 2 for containerd 1.6/1.7, version 3 for 2.x), with
a backup of the config. Running it again changes nothing; uninstall undoes it.

  --prefix DIR               where the launcher goes (default /usr/local)
  --containerd-config FILE   containerd's config (default /etc/containerd/config.toml)
  --runtime-name NAME        CRI runtime handler name (default shimlab)
  --shim-config FILE         shimlab's TOML config to use instead of the default one
  --config-version 2|3       version for a new containerd config (default: from containerd --version)
  --pod-annotation GLOB      pass pod annotations matching GLOB to the shim (repeatable)
  --sandboxer shim|podsandbox  containerd 2.x: pods made by the shim's Sandbox API (no pause
                             container; the runtime then names a launcher of its own carrying the
                             config, containerd-shim-shimlab-sandboxer-v2) or by CRI's pause
                             container (2.x's default when absent)
  --copy                     copy Node and the build to <prefix>/lib/shimlab (the node needs no checkout)
  --root DIR                 the host's / mounted at DIR (a DaemonSet); config paths stay the host's
  --restart                  systemctl restart containerd afterwards (through nsenter with --root)
`;

export async function installCommand(argv: string[], action: "install" | "uninstall"): Promise<number> {
  let prefix = "/usr/local";
  let containerdConfig: string | undefined;
  let runtimeName: string | undefined;
  let shimConfig: string | undefined;
  let version: number | undefined;
  const annotations: string[] = [];
  let restart = false;
  let copy = false;
  let root: string | undefined;
  let sandboxer: Sandboxer | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--prefix") prefix = value();
    else if (a === "--containerd-config") containerdConfig = value();
    else if (a === "--restart") restart = true;
    else if (a === "--root") root = value();
    else if (action === "install" && a === "--copy") copy = true;
    else if (action === "install" && a === "--runtime-name") runtimeName = value();
    else if (action === "install" && a === "--shim-config") shimConfig = value();
    else if (action === "install" && a === "--pod-annotation") annotations.push(value());
    else if (action === "install" && a === "--sandboxer") {
      const v = value();
      if (!SANDBOXERS.includes(v as Sandboxer)) throw new Error(`--sandboxer wants ${SANDBOXERS.join(" or ")}, not ${JSON.stringify(v)}`);
      sandboxer = v as Sandboxer;
    } else if (action === "install" && a === "--config-version") {
      version = Number(value());
      if (version !== 2 && version !== 3) throw new Error("--config-version wants 2 or 3");
    } else if (a === "-h" || a === "--help") {
      process.stdout.write(HELP);
      return 0;
    } else {
      process.stderr.write(`shimlab ${action}: unknown argument ${a}\n\n${HELP}`);
      return 2;
    }
  }
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
