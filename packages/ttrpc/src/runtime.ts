// The protobuf wire runtime generated codecs import (ttrpc-gen-ts --runtime).
export * from "./wire";
export * from "./message";
