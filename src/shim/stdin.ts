// `start`'s stdin, read whole and synchronously: containerd writes the options
// Any (1.6) or BootstrapParams (2.3+) there and closes it, or gives /dev/null.
import fs from "node:fs";

/** containerd's shim library reads at most this much. */
const STDIN_MAX = 10 << 20;

/** containerd's stdin for `start`: a pipe or file when it has something to say, /dev/null otherwise. */
export function readStdin(): Buffer {
  let st: fs.Stats;
  try {
    st = fs.fstatSync(0);
  } catch {
    return Buffer.alloc(0);
  }
  if (!st.isFIFO() && !st.isFile() && !st.isSocket()) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.allocUnsafe(64 << 10);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      // A non-blocking pipe: wait for the writer, as a blocking read would.
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
        continue;
      }
      if ((e as NodeJS.ErrnoException).code === "EOF") break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    total += n;
    if (total > STDIN_MAX) throw new Error(`stdin holds more than ${STDIN_MAX} bytes`);
  }
  return Buffer.concat(chunks);
}
