// shimlab's ttrpc lives in packages/ttrpc (@shimlab/ttrpc); this name stays for shimlab's own imports.
export { Client } from "@shimlab/ttrpc";
export type { ClientOptions } from "@shimlab/ttrpc";
