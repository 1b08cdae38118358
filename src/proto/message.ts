// The protobuf wire runtime lives in packages/ttrpc (@shimlab/ttrpc), beside the generator.
export { EMPTY_BYTES, readNested, toAny, toPlain } from "@shimlab/ttrpc";
export type { CallContext, FieldInfo, MessageCodec } from "@shimlab/ttrpc";
