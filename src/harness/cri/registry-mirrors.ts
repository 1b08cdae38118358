// Where containerd's CRI pulls from, per registry: a hosts directory
// (containerd's `config_path`, the same files in 1.6 and 2.x) with one
// `<registry>/hosts.toml` naming a mirror tried before the registry itself.
// A mirror on 127.0.0.1 speaks plain HTTP.
import fs from "node:fs";
import path from "node:path";

/** The real endpoint behind a registry name (docker.io's is not its name). */
function upstream(registry: string): string {
  return registry === "docker.io" ? "https://registry-1.docker.io" : `https://${registry}`;
}

/** Writes dir/<registry>/hosts.toml for each registry, all pointing at mirror ("127.0.0.1:PORT"); returns dir. */
export function writeRegistryMirrors(dir: string, registries: string[], mirror: string): string {
  if (!/^[\w.-]+(:\d+)?$/.test(mirror)) throw new Error(`registry mirror ${JSON.stringify(mirror)}: want host[:port]`);
  for (const r of registries) {
    if (!/^[\w.-]+(:\d+)?$/.test(r)) throw new Error(`registry ${JSON.stringify(r)}: want host[:port]`);
    fs.mkdirSync(path.join(dir, r), { recursive: true });
    fs.writeFileSync(
      path.join(dir, r, "hosts.toml"),
      [`server = "${upstream(r)}"`, "", `[host."http://${mirror}"]`, `  capabilities = ["pull", "resolve"]`, ""].join("\n"),
    );
  }
  return dir;
}
