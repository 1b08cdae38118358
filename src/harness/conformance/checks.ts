// Every check, in the order they run.
import type { Check } from "./types";
import { binaryChecks } from "./checks-binary";
import { lifecycleChecks } from "./checks-lifecycle";
import { killChecks } from "./checks-kill";
import { execChecks } from "./checks-exec";
import { stdioChecks } from "./checks-stdio";
import { pauseChecks } from "./checks-pause";
import { pidsChecks } from "./checks-pids";
import { eventChecks } from "./checks-events";
import { apiChecks } from "./checks-api";
import { sandboxChecks } from "./checks-sandbox";

export const ALL_CHECKS: Check[] = [...binaryChecks, ...lifecycleChecks, ...killChecks, ...execChecks, ...stdioChecks, ...pauseChecks, ...pidsChecks, ...eventChecks, ...apiChecks, ...sandboxChecks];

const names = new Set<string>();
for (const c of ALL_CHECKS) {
  if (names.has(c.name)) throw new Error(`duplicate check name ${c.name}`);
  names.add(c.name);
}
