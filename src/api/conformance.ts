// The conformance runner as the CLI's `shimlab conformance` uses it.
export { runSuite, selectChecks, type SuiteOptions } from "../harness/conformance/runner";
export { ALL_CHECKS } from "../harness/conformance/checks";
export { PROFILES, guessProfile, type Profile } from "../harness/conformance/profiles";
export { summary, toJson, toJunit, progressLine } from "../harness/conformance/report";
export { compareReports, formatComparison, type Comparison, type Difference } from "../harness/conformance/compare";
export type { Check, CheckResult, SuiteReport, Status } from "../harness/conformance/types";
