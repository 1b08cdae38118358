// shimlab peers list | fetch [NAME...]
// The real programs the test suite runs shimlab against (containerd 1.6/1.7/2.1,
// their runc shims and runc, and the Go peers), fetched from Debian's archive
// and the Go module proxy into the cache (SHIMLAB_CACHE_DIR, /var/cache/shimlab).
import { PEERS } from "../../harness/peers/registry";
import { dispatch } from "../args";

export function peersCommand(args: string[]): Promise<number> {
  return dispatch(["peers"], args, (sub, p) => (sub === "list" ? list() : fetch(p.positionals)));
}

function list(): number {
  for (const p of PEERS) process.stdout.write(`${p.name.padEnd(18)} ${p.what}\n`);
  return 0;
}

async function fetch(names: string[]): Promise<number> {
  const unknown = names.filter((n) => !PEERS.some((p) => p.name === n));
  if (unknown.length) {
    process.stderr.write(`shimlab peers: unknown ${unknown.join(", ")}; known: ${PEERS.map((p) => p.name).join(", ")}\n`);
    return 2;
  }
  let failed = 0;
  for (const p of PEERS.filter((p) => !names.length || names.includes(p.name))) {
    const t0 = Date.now();
    try {
      const line = await p.fetch();
      process.stdout.write(`${p.name}: ${line} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    } catch (e) {
      failed++;
      process.stderr.write(`${p.name}: ${(e as Error).message}\n`);
    }
  }
  return failed ? 1 : 0;
}
