// Device cgroup rules that mean the same on any kernel. A rule naming a
// major:minor names a device of the machine that wrote it; the rule allowing
// every device (what containerd gives a privileged container,
// oci.WithAllDevicesAllowed) names none, so it still means "privileged" in a
// VM whose devices are numbered differently. Kata's agent reads it the same
// way (rustjail cgroups: rule_for_all_devices, has_allowed_all_devices_rule).

export interface DeviceRule {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

/** Unset numbers are wildcards; Kata's protobuf has no unset and sends 0 for them, runc's JSON -1. */
const anyNumber = (n: number | undefined) => n === undefined || n === -1 || n === 0;

/** An allowing rule for every device type, number and access: `a *:* rwm`. */
export function allowsAllDevices(r: DeviceRule): boolean {
  const access = r.access ?? "";
  return r.allow && (!r.type || r.type === "a") && anyNumber(r.major) && anyNumber(r.minor) && ["r", "w", "m"].every((a) => access.includes(a));
}

/** The one rule that says it with runc's wildcards. */
export const ALLOW_ALL_DEVICES: Required<DeviceRule> = { allow: true, type: "a", major: -1, minor: -1, access: "rwm" };
