// The protobuf wire runtime lives in packages/ttrpc (@shimlab/ttrpc), beside the generator.
export { ProtoDecodeError, Reader, WireType, Writer, readTag } from "@shimlab/ttrpc";
export type { Codec } from "@shimlab/ttrpc";
