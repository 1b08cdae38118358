// Lifecycle traces: the recorder (every process of a run) and the renderers.
export { TRACE_ENV, TraceRecorder, processTracer, summarize, monotonicMicros, type TraceRecord } from "./recorder";
export { FileWatch, type WatchRoot } from "./files";
export { buildModel, readTrace, parseTrace, ARROW_KINDS, FIXED_LANES, type Model } from "./model";
export { checkOrdering, type Violation } from "../contract/ordering-check";
export { ORDERING_RULES } from "../contract/rules";
export { renderHtml } from "./html";
export { renderMermaid } from "./mermaid";
