// What a citation of a file outside the repository looks like. shimlab's rules
// were first written in notes that never shipped with it (a `shared/notes/…`
// tree beside the checkout); every output and doc must point into docs/contract
// instead, so tests match outputs against this.
export const OUTSIDE = /shared\/notes|\.\.\/shared\b|containerd-shim\.md|baselines\.md|the (?:baselines|contract) notes?\b/;
