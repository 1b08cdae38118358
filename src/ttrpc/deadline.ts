// shimlab's ttrpc lives in packages/ttrpc (@shimlab/ttrpc); this name stays for shimlab's own imports.
export { TIMER_MAX_MS, afterDeadline } from "@shimlab/ttrpc";
export type { DeadlineTimer } from "@shimlab/ttrpc";
