// The pieces of a VM pod's loopback redirect that need no VM: the rule `delete`
// removes is the rule the shim added, and the native socket made inside a
// network namespace (here our own: setns to it needs root, nothing else).
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import net from "node:net";
import { addRedirectCommand, removeRedirectCommand, ruleComment, RULE_COMMENT_PREFIX } from "../../src/hypervisor/qemu/loopback-commands";
import { hasNative, native } from "../../src/native";

describe("the loopback REDIRECT rule", () => {
  const rec = { port: 40123, comment: ruleComment("0123abcd") };

  it("is removed by exactly the spec it was added with (iptables -D matches on the whole rule)", () => {
    const add = addRedirectCommand(rec);
    const del = removeRedirectCommand(rec);
    expect(add.slice(0, 5)).toEqual(["iptables", "-w", "-t", "nat", "-A"]);
    expect(del.slice(0, 5)).toEqual(["iptables", "-w", "-t", "nat", "-D"]);
    expect(del.slice(5)).toEqual(add.slice(5));
  });

  it("sends loopback TCP to any port but the relay's own to the relay, and names the sandbox", () => {
    const line = addRedirectCommand(rec).join(" ");
    expect(line).toBe(`iptables -w -t nat -A OUTPUT -o lo -p tcp -d 127.0.0.0/8 -m tcp ! --dport 40123 -m comment --comment ${RULE_COMMENT_PREFIX} 0123abcd -j REDIRECT --to-ports 40123`);
    expect(ruleComment("x".repeat(300)).length).toBeLessThanOrEqual(255); // iptables' comment limit
  });
});

const root = process.getuid?.() === 0;

describe.skipIf(!hasNative())("native listenTcpInNetns / originalDst", () => {
  it("a namespace that is not there is a clear error", () => {
    expect(() => native().listenTcpInNetns("/nonexistent/netns", "127.0.0.1", 0)).toThrow(/open network namespace: No such file or directory/);
    expect(() => native().listenTcpInNetns("/proc/self/ns/net", "not-an-ip", 0)).toThrow(/not an IPv4 address/);
  });

  it.skipIf(!root)("makes a listening socket that Node can serve, in the namespace given; our own thread stays where it was", async () => {
    const before = fs.readlinkSync("/proc/thread-self/ns/net");
    const fd = native().listenTcpInNetns("/proc/self/ns/net", "127.0.0.1", 0, 16);
    expect(fs.readlinkSync("/proc/thread-self/ns/net")).toBe(before);
    const srv = net.createServer((s) => s.end("hi"));
    await new Promise<void>((r) => srv.listen({ fd }, r));
    const port = (srv.address() as net.AddressInfo).port;
    const got = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, "127.0.0.1");
      let b = "";
      c.on("data", (d) => (b += d));
      c.on("end", () => resolve(b));
      c.on("error", reject);
    });
    expect(got).toBe("hi");
    await new Promise((r) => srv.close(r));
  });

  it("originalDst of something that is not a socket is a clear error", () => {
    expect(() => native().originalDst(-1)).toThrow(/getsockopt\(SO_ORIGINAL_DST\): Bad file descriptor/);
  });
});
