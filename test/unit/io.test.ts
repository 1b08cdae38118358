// The client's stdio URIs as containerd writes them (pkg/process/io.go); the
// end-to-end behaviour is in the conformance checks stdout-to-file and
// stdout-to-binary-logger.
import { describe, it, expect } from "vitest";
import { parseUri } from "../../src/shim/io";

describe("stdio URIs", () => {
  it("a bare absolute path and fifo:// are fifos; file:// and binary:// keep their path", () => {
    expect(parseUri("/run/c/stdout")).toEqual({ scheme: "fifo", path: "/run/c/stdout", args: [] });
    expect(parseUri("fifo:///run/c/stdout")).toEqual({ scheme: "fifo", path: "/run/c/stdout", args: [] });
    expect(parseUri("file:///var/log/a%20b.log")).toEqual({ scheme: "file", path: "/var/log/a b.log", args: [] });
  });

  it("binary:// query: each key then its first value, as separate arguments (NewBinaryCmd)", () => {
    expect(parseUri("binary:///usr/bin/logger?level=debug&tag=x").args).toEqual(["level", "debug", "tag", "x"]);
    expect(parseUri("binary:///usr/bin/logger?flag").args).toEqual(["flag", ""]);
    expect(parseUri("binary:///usr/bin/logger?a=1&a=2").args).toEqual(["a", "1"]);
  });

  it("refuses relative paths and schemes it does not know, as InvalidArgument", () => {
    for (const bad of ["relative/stdout", "file://relative.log", "tcp://127.0.0.1:1", "binary://"]) expect(() => parseUri(bad), bad).toThrow(/not absolute|not supported/);
  });
});
