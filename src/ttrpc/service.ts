// shimlab's ttrpc lives in packages/ttrpc (@shimlab/ttrpc); this name stays for shimlab's own imports.
export type { CallOptions, Handler, MethodDef, ServiceClient, ServiceDef, ServiceImpl } from "@shimlab/ttrpc";
