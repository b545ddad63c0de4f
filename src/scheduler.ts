/**
 * The recurring-job seam shared by the sweep and the resource tracker: node-schedule in the daemon, a manual
 * trigger in tests (so no test waits for a wall-clock tick).
 */
import schedule from 'node-schedule';

export interface ScheduledJob {
  cancel(): void;
}

/** Runs `tick` on a 6-field cron expression (with seconds). */
export type Scheduler = (cron: string, name: string, tick: () => void) => ScheduledJob;

export const cronScheduler: Scheduler = (cron, name, tick) => {
  const job = schedule.scheduleJob(name, cron, tick);
  // node-schedule returns null for an expression that never fires; config validated the field count only.
  if (!job) throw new Error(`cron expression "${cron}" for ${name} never fires; expected a 6-field cron with seconds`);
  return { cancel: () => void job.cancel() };
};
