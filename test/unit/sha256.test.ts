import { describe, it, expect } from "vitest";
import crypto from "node:crypto";
import { sha256Hex } from "../../src/util/sha256";

const ref = (b: string | Uint8Array) => crypto.createHash("sha256").update(b).digest("hex");

describe("sha256Hex", () => {
  it("matches the FIPS 180-4 examples", () => {
    expect(sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")).toBe("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  });

  it("matches node:crypto at every length around the block boundaries, and on UTF-8", () => {
    for (let n = 0; n < 200; n++) {
      const s = "x".repeat(n);
      expect(sha256Hex(s)).toBe(ref(s));
    }
    const u = "/run/containerd/containerd.sock/námespace/ид/🚀";
    expect(sha256Hex(u)).toBe(ref(u));
    const bytes = crypto.randomBytes(1000);
    expect(sha256Hex(bytes)).toBe(ref(bytes));
  });
});
