export { parseScenario, loadScenarioFile, scenarioFiles, ScenarioError } from "./load";
export { runScenario, missingPrerequisites, type RunOptions } from "./runner";
export { MUTANTS, mutantOptions } from "./mutants";
export { jsonReport, junitReport, summarize, writeReport } from "./report";
export { formatHistory } from "./history";
export type * from "./types";
