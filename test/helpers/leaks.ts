// After each test: nothing of shimlab's may be left running or mounted (the
// checks live in the library, shimlab/vitest uses them too).
export { cgroupDirs, containerProcesses, expectNoLeaks, expectNoProcessesMentioning } from "../../src/harness/leaks";
