// shimlab's ttrpc is the @shimlab/ttrpc package (packages/ttrpc), usable on its own.
export * from "@shimlab/ttrpc";
