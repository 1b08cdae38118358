// What the failpoint shim wraps around the daemon's interfaces: containerd's
// per-method failpoints from the bundle's annotations and the mutants
// (SHIMLAB_MUTANTS) as ttrpc interceptors, event faults (SHIMLAB_EVENT_FAULTS)
// around the EventSink, and the host agent's link through a fault proxy
// (SHIMLAB_AGENT_LINK_FAULTS) around the Hypervisor. Malformed failpoints,
// mutants or event faults are logged and left out; malformed link toxics fail
// the sandbox's start (the behaviour each had inside the production shim).
import type { DaemonDecorations } from "../shim/decorations";
import { isSandboxBundle, readBundleSpec } from "../shim/bundle";
import { FailpointTable, SHIM_FAILPOINT_ANNOTATION, failpointInterceptor } from "../faults/failpoint";
import { MUTANTS_ENV, parseMutants } from "../faults/mutants";
import { EVENT_FAULTS_ENV, FaultyEventSink, parseEventFaults } from "../faults/event-faults";
import { AGENT_LINK_FAULTS_ENV, LinkFaultHypervisor } from "../faults/agent-link";

export function faultDecorations(env: NodeJS.ProcessEnv): DaemonDecorations {
  const eventFaults = env[EVENT_FAULTS_ENV];
  const mutants = env[MUTANTS_ENV];
  return {
    server(server, { bundle, logger }) {
      // containerd's failpoint shim reads per-method failpoints from the bundle's annotations (a sandbox's bundle has none).
      if (!isSandboxBundle(bundle)) {
        try {
          const table = new FailpointTable();
          table.loadPrefixed(readBundleSpec(bundle).annotations, SHIM_FAILPOINT_ANNOTATION);
          if (table.size) {
            server.use(failpointInterceptor(table, { onFire: (method, a) => logger.warn("failpoint fired", { method, action: a.type }) }));
            logger.info("task failpoints installed", { count: table.size });
          }
        } catch (e) {
          logger.warn("failpoint annotations not read", { error: (e as Error).message });
        }
      }
      // Deliberately broken behaviours, so that scenarios can show they catch them.
      if (mutants) {
        try {
          for (const m of parseMutants(mutants)) server.use(m.interceptor);
          logger.warn("MUTANTS installed: this shim is broken on purpose", { mutants });
        } catch (e) {
          logger.error("mutants not installed", { error: (e as Error).message });
        }
      }
    },
    events: eventFaults
      ? (events, { logger }) => {
          try {
            const sink = new FaultyEventSink(events, parseEventFaults(eventFaults), (action, topic) => logger.warn("event fault", { action, topic }));
            logger.warn("event faults installed", { rules: eventFaults });
            return sink;
          } catch (e) {
            logger.error("event faults not installed", { error: (e as Error).message });
            return events;
          }
        }
      : undefined,
    // The toxics themselves are parsed at each sandbox's start, from the environment its agent gets.
    hypervisor: env[AGENT_LINK_FAULTS_ENV] ? (hypervisor, { logger }) => new LinkFaultHypervisor(hypervisor, logger) : undefined,
  };
}
