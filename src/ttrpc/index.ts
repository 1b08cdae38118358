// shimlab's ttrpc is the @shimlab/ttrpc package (packages/ttrpc), usable on its own.
export * from "@shimlab/ttrpc";
// The package's Server, whose handlers' errdefs errors reach the wire as their status codes.
export { Server } from "./server";
