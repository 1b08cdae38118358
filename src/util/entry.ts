// Which file starts the shim daemon and the mock agent. `npm run build` also
// bundles each program into one file (scripts/bundle.mjs, dist/bundle/),
// which Node loads in a fraction of the time it takes to resolve and compile
// a hundred modules; inside a bundle this constant is true, and the programs
// re-launch their bundle's launcher (dist/bundle/*-main.js) rather than the
// module tree.
declare const SHIMLAB_BUNDLE: boolean | undefined;

export const inBundle: boolean = typeof SHIMLAB_BUNDLE !== "undefined" && SHIMLAB_BUNDLE === true;
