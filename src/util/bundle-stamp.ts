// What a parked shim daemon loaded, on disk: the bundle launcher it runs and the bundle beside it
// (dist/bundle/shim-main.js, shim.js), by size and modification time. A daemon parked before the
// last build runs code the launcher would no longer start: the factory replaces it, and it refuses
// a hand-over itself if one reaches it.
import fs from "node:fs";
import path from "node:path";

export function bundleStamp(script: string): string {
  return [script, path.join(path.dirname(script), "shim.js")]
    .map((f) => {
      try {
        const st = fs.statSync(f);
        return `${st.size}:${st.mtimeMs}`;
      } catch {
        return "-";
      }
    })
    .join(" ");
}
