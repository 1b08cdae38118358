// shimlab's ttrpc lives in packages/ttrpc (@shimlab/ttrpc); this name stays for shimlab's own imports.
export { Flags, FrameReader, HEADER_LENGTH, MESSAGE_LENGTH_MAX, MessageType, encodeFrame, writeHeader } from "@shimlab/ttrpc";
export type { FrameEvent, FrameHeader } from "@shimlab/ttrpc";
