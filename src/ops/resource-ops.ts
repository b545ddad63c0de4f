/**
 * The `resources` op: the latest sample of the host, the engine and each live session's usage, beside what
 * admission has reserved. Before the first scheduled sample it samples once, so the answer is never empty.
 */
import type { OpDefinition } from '../daemon/op-registry.js';
import type { Admission, AdmissionState } from '../resources/admission.js';
import type { ResourceSnapshot, ResourceTracker } from '../resources/tracker.js';

export interface ResourceOpsDeps {
  tracker: Pick<ResourceTracker, 'latest' | 'sample'>;
  admission?: Pick<Admission, 'state'>;
}

export type ResourcesResult = ResourceSnapshot & { admission?: AdmissionState };

export function resourceOps(deps: ResourceOpsDeps): OpDefinition[] {
  const resources: OpDefinition<{ fresh?: boolean }> = {
    name: 'resources',
    summary: 'host CPU, memory, load and disk, engine objects, per-session usage and admission reservations',
    args: { fresh: { type: 'boolean' } },
    async handler(args): Promise<ResourcesResult> {
      const snapshot = args.fresh || !deps.tracker.latest() ? await deps.tracker.sample() : deps.tracker.latest()!;
      return deps.admission ? { ...snapshot, admission: deps.admission.state() } : snapshot;
    },
  };
  return [resources as OpDefinition];
}
