// shimlab's ttrpc lives in packages/ttrpc (@shimlab/ttrpc); this name stays for shimlab's own imports.
export { Code, RpcError, alreadyExists, asRpcError, codeName, deadlineExceeded, failedPrecondition, internal, invalidArgument, isCode, notFound, resourceExhausted, unavailable, unimplemented, unknown } from "@shimlab/ttrpc";
