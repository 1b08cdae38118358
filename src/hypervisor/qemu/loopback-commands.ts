// The netfilter rule that sends a VM pod's loopback TCP to the shim's relay
// (loopback.ts), kept free of imports like tap-commands.ts: the driver's
// reaper (reap.ts) runs the removal in `delete` after a crash.

/** What a VM record keeps of the redirect, for `delete`. */
export interface LoopbackRecord {
  /** The relay's port on 127.0.0.1 in the pod's namespace. */
  port: number;
  /** The rule's comment: names the sandbox, so a rule of ours is found and told apart. */
  comment: string;
}

/** Every rule shimlab adds carries a comment starting with this. */
export const RULE_COMMENT_PREFIX = "shimlab portfwd";

export function ruleComment(sandboxId: string): string {
  return `${RULE_COMMENT_PREFIX} ${sandboxId}`.slice(0, 255);
}

/**
 * The rule's match and target (after `-A OUTPUT` or `-D OUTPUT`): TCP from this namespace to
 * 127.0.0.0/8 on lo, to any port but the relay's own, is REDIRECTed to the relay. Only loopback:
 * that is where containerd's PortForward dials (`localhost:<port>`), and nothing else in a VM
 * pod's namespace has traffic of its own. Sparing the relay's port keeps its own connections
 * out of the NAT table; they reach it anyway. IPv4 only: containerd dials tcp4 first and tries
 * tcp6 (::1) only when that fails, which with this rule it never does.
 */
function rule(r: LoopbackRecord): string[] {
  return ["-o", "lo", "-p", "tcp", "-d", "127.0.0.0/8", "-m", "tcp", "!", "--dport", String(r.port), "-m", "comment", "--comment", r.comment, "-j", "REDIRECT", "--to-ports", String(r.port)];
}

/** iptables' own lock (-w) serialises us with CNI's portmap and anything else writing rules. */
export function addRedirectCommand(r: LoopbackRecord): string[] {
  return ["iptables", "-w", "-t", "nat", "-A", "OUTPUT", ...rule(r)];
}

export function removeRedirectCommand(r: LoopbackRecord): string[] {
  return ["iptables", "-w", "-t", "nat", "-D", "OUTPUT", ...rule(r)];
}
