// shimlab's ttrpc lives in packages/ttrpc (@shimlab/ttrpc); this name stays for shimlab's own imports.
export { Server, ServerConnection } from "@shimlab/ttrpc";
export type { Interceptor, ServerCall, ServerOptions } from "@shimlab/ttrpc";
