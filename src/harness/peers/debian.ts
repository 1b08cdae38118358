// Packages from another Debian suite without touching the system's: apt runs
// with its own sources list, state and cache (the system's /etc/apt and dpkg
// database are never read or written), `apt-get download` fetches the .deb and
// `dpkg-deb -x` unpacks it into a cache directory keyed by its version.
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { cached, peersCacheDir, safeName } from "./cache";

const run = promisify(execFile);

export const DEBIAN_MIRROR = "http://deb.debian.org/debian";
const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

export interface DebianPackage {
  name: string;
  suite: string;
  version: string;
  /** Where the package is unpacked (its /usr/bin is <dir>/usr/bin). */
  dir: string;
}

/** A private apt for one suite; its package lists are refreshed at most once per process and hour. */
export class PrivateApt {
  readonly root: string;
  private updated: Promise<void> | null = null;

  constructor(
    readonly suite: string,
    readonly mirror = process.env.SHIMLAB_DEBIAN_MIRROR || DEBIAN_MIRROR,
    cacheDir = peersCacheDir(),
  ) {
    this.root = path.join(cacheDir, "apt", safeName(suite));
  }

  private options(): string[] {
    const r = this.root;
    const o: Record<string, string> = {
      "Dir::Etc": path.join(r, "etc"),
      "Dir::Etc::sourcelist": path.join(r, "etc", "sources.list"),
      "Dir::Etc::sourceparts": path.join(r, "etc", "sources.list.d"),
      "Dir::Etc::preferencesparts": path.join(r, "etc", "preferences.d"),
      "Dir::State": path.join(r, "state"),
      "Dir::State::status": path.join(r, "state", "status"),
      "Dir::Cache": path.join(r, "cache"),
      "APT::Architecture": "amd64",
      // Our own directories: no lock is shared with the system's apt.
      "Debug::NoLocking": "1",
      "APT::Sandbox::User": "root",
    };
    return Object.entries(o).flatMap(([k, v]) => ["-o", `${k}=${v}`]);
  }

  private prepare(): void {
    for (const d of ["etc/sources.list.d", "etc/preferences.d", "state/lists/partial", "cache/archives/partial"]) fs.mkdirSync(path.join(this.root, d), { recursive: true });
    fs.writeFileSync(path.join(this.root, "etc", "sources.list"), `deb [signed-by=${KEYRING}] ${this.mirror} ${this.suite} main\n`);
    if (!fs.existsSync(path.join(this.root, "state", "status"))) fs.writeFileSync(path.join(this.root, "state", "status"), "");
  }

  async update(): Promise<void> {
    this.updated ??= (async () => {
      this.prepare();
      const stamp = path.join(this.root, "state", "updated");
      const fresh = fs.existsSync(stamp) && Date.now() - fs.statSync(stamp).mtimeMs < 3600_000;
      if (fresh) return;
      await run("apt-get", [...this.options(), "update"], { maxBuffer: 16 << 20 }).catch((e) => {
        throw new Error(`apt-get update for ${this.suite} failed: ${e.stderr || e.message}`);
      });
      fs.writeFileSync(stamp, new Date().toISOString());
    })();
    try {
      await this.updated;
    } catch (e) {
      this.updated = null;
      throw e;
    }
  }

  /** Every version of name that this suite offers, newest first. */
  async versions(name: string): Promise<string[]> {
    await this.update();
    const { stdout } = await run("apt-cache", [...this.options(), "madison", name]);
    return stdout
      .split("\n")
      .map((l) => l.split("|").map((s) => s.trim()))
      .filter((f) => f.length >= 3 && f[0] === name)
      .map((f) => f[1]);
  }

  /**
   * The newest version of name whose upstream version starts with prefix
   * (e.g. "2.1." takes 2.1.9+ds1-5), unpacked into the cache.
   */
  async fetch(name: string, prefix: string): Promise<DebianPackage> {
    // A cached unpack of the wanted series is used without asking the archive:
    // tests run offline once `shimlab peers fetch` has run.
    const base = path.join(peersCacheDir(), "debian", safeName(this.suite), name);
    const have = fs.existsSync(base) ? fs.readdirSync(base).filter((d) => d.startsWith(safeName(prefix)) && fs.existsSync(path.join(base, d, ".complete"))) : [];
    if (have.length) {
      const dir = path.join(base, have.sort().at(-1)!);
      return { name, suite: this.suite, version: fs.readFileSync(path.join(dir, "version"), "utf8").trim(), dir };
    }
    const version = (await this.versions(name)).find((v) => v.replace(/^\d+:/, "").startsWith(prefix));
    if (!version) throw new Error(`Debian ${this.suite} has no ${name} ${prefix}* (apt-cache madison ${name} in the private apt under ${this.root})`);
    const dir = await cached(path.join(base, safeName(version)), async (tmp) => {
      const dl = path.join(tmp, ".deb");
      fs.mkdirSync(dl);
      await run("apt-get", [...this.options(), "download", `${name}=${version}`], { cwd: dl, maxBuffer: 16 << 20 }).catch((e) => {
        throw new Error(`apt-get download ${name}=${version} (${this.suite}) failed: ${e.stderr || e.message}`);
      });
      const deb = fs.readdirSync(dl).find((f) => f.endsWith(".deb"));
      if (!deb) throw new Error(`apt-get download ${name}=${version} wrote no .deb`);
      await run("dpkg-deb", ["-x", path.join(dl, deb), tmp]);
      fs.rmSync(dl, { recursive: true, force: true });
      fs.writeFileSync(path.join(tmp, "version"), version + "\n");
    });
    return { name, suite: this.suite, version, dir };
  }
}
