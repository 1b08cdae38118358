// containerd's identifier rules, checked before any path is built from an id.
import { invalidArgument } from "../errdefs";

/** containerd's identifiers.Validate: alphanumerics joined by single '.', '_' or '-', at most 76 characters. */
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;
export const MAX_IDENTIFIER_LENGTH = 76;

export function validateId(kind: string, id: string): void {
  if (!id) throw invalidArgument(`${kind} must not be empty`);
  if (id.length > MAX_IDENTIFIER_LENGTH) {
    throw invalidArgument(`${kind} ${JSON.stringify(id.slice(0, 80))} greater than maximum length (${MAX_IDENTIFIER_LENGTH} characters)`);
  }
  if (!IDENTIFIER.test(id)) throw invalidArgument(`${kind} ${JSON.stringify(id)} must match ${IDENTIFIER.source}`);
}

/** Exec ids come from clients (ctr, CRI) and end up in agent tables, not paths; still refuse control bytes and path separators. */
export function validateExecId(execId: string): void {
  if (!execId) throw invalidArgument("exec id must not be empty");
  if (execId.length > 256 || /[\x00-\x1f/]/.test(execId) || execId === "." || execId === "..") {
    throw invalidArgument(`exec id ${JSON.stringify(execId.slice(0, 80))} is not valid`);
  }
}
